"""command_runner on a real AnsibleModule running real commands (sh, true, a missing binary)."""
import json

import pytest
from ansible.module_utils import basic

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.command_runner import (
    Command, CommandError, CommandRunner, from_stdout)


@pytest.fixture(name='module')
def module_fixture(monkeypatch):
    monkeypatch.setattr(basic, '_ANSIBLE_ARGS', json.dumps({'ANSIBLE_MODULE_ARGS': {}}).encode())
    monkeypatch.setattr(basic, '_ANSIBLE_PROFILE', 'legacy', raising=False)
    return basic.AnsibleModule(argument_spec={}, supports_check_mode=True)


COMMANDS = {
    'words': Command('sh', lambda text: ['-c', 'printf "%s\\n" "$0"', text], parse=from_stdout(str.split)),
    'exit3': Command('sh', ['-c', 'echo first; echo "it broke" >&2; exit 3']),
    'exit_is_answer': Command('sh', ['-c', 'exit 2'], ok_rcs=None, parse=lambda result: result.rc == 2),
    'lang': Command('sh', ['-c', 'echo "$LC_ALL"'], parse=from_stdout(str.strip)),
    'absent': Command('llmscale-no-such-binary'),
}


def test_run_builds_the_arguments_and_parses(module):
    runner = CommandRunner(module, COMMANDS)
    assert runner.run('words', text='two words') == ['two', 'words']
    assert runner.run('exit_is_answer') is True
    assert runner.run('lang') == 'C'  # output is parsed as it was recorded: untranslated


def test_an_exit_code_not_declared_ok_raises_with_the_last_line(module):
    runner = CommandRunner(module, COMMANDS)
    with pytest.raises(CommandError) as error:
        runner.run('exit3')
    assert error.value.result.rc == 3
    assert str(error.value).endswith('exited with 3: it broke')
    assert runner.result('exit3').stdout == 'first\n'  # result() never raises on the exit code


def test_missing_binaries_and_overrides(module):
    runner = CommandRunner(module, COMMANDS, binaries={'lang': '/nonexistent/sh'})
    assert not runner.available('absent')
    with pytest.raises(CommandError, match='llmscale-no-such-binary was not found on PATH'):
        runner.run('absent')
    with pytest.raises(CommandError, match='/nonexistent/sh was not found'):
        runner.run('lang')
    with pytest.raises(TypeError):
        runner.run('exit3', extra='x')  # static arguments take no keywords
    with pytest.raises(KeyError):
        runner.run('undeclared')
