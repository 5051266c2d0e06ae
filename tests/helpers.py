"""Running real ansible-playbook / ansible from tests, and reading what happened.

The JSON stdout callback gives every task result and the play recap, so tests
assert on real changed/failed counts and messages instead of scraping text.
"""
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(REPO_ROOT, '.venv', 'bin')


def ansible_env(extra=None):
    """Environment for ansible commands run against this checkout."""
    env = dict(os.environ)
    env.update({
        'ANSIBLE_CONFIG': os.path.join(REPO_ROOT, 'ansible.cfg'),
        'ANSIBLE_COLLECTIONS_PATH': os.path.join(REPO_ROOT, '.collections'),
        'ANSIBLE_ROLES_PATH': os.path.join(REPO_ROOT, 'roles'),
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
        'PATH': VENV_BIN + os.pathsep + env.get('PATH', ''),
    })
    env.update(extra or {})
    return env


@dataclass
class PlaybookResult:
    rc: int
    output: dict = field(default_factory=dict)
    stderr: str = ''
    raw_stdout: str = ''

    @property
    def stats(self):
        """Play recap per host: {'host': {'ok': n, 'changed': n, 'failures': n, ...}}."""
        return self.output.get('stats', {})

    def total(self, key):
        return sum(host.get(key, 0) for host in self.stats.values())

    @property
    def changed(self):
        return self.total('changed')

    @property
    def failed(self):
        return self.total('failures') + self.total('unreachable')

    def task_results(self):
        """Yield (task name, host, result dict) for every task that ran.

        Task names are given as written in the task file: the "role : " prefix
        Ansible adds for tasks of a role is removed.
        """
        for play in self.output.get('plays', []):
            for task in play.get('tasks', []):
                name = task['task']['name'].split(' : ', 1)[-1]
                for host, result in task.get('hosts', {}).items():
                    yield name, host, result

    def changed_tasks(self):
        return [(name, host) for name, host, result in self.task_results() if result.get('changed')]

    def task_names(self, changed=False):
        """Names of the tasks that ran (not skipped) on some host, or with changed=True only of those that changed."""
        return [name for name, _host, result in self.task_results()
                if not result.get('skipped') and (result.get('changed') or not changed)]

    def failure_messages(self):
        return [str(result.get('msg', '')) for _name, _host, result in self.task_results()
                if result.get('failed') or result.get('unreachable')]

    def results_of(self, task_name):
        return [result for name, _host, result in self.task_results() if name == task_name]

    def describe(self):
        """A short text for assertion messages."""
        return 'rc=%s changed=%s failures=%s stderr=%s' % (
            self.rc, self.changed_tasks(), self.failure_messages(), self.stderr[-2000:])


def playbook_command(playbook, inventory=None, extra_vars=None, check=False, diff=False, limit=None, tags=None,
                     env=None, cli_vars=None):
    """(argv, environment, extra-vars file to remove afterwards) of an ansible-playbook run; see run_playbook."""
    path = playbook if os.path.isabs(playbook) else os.path.join(REPO_ROOT, playbook)
    cmd = [os.path.join(VENV_BIN, 'ansible-playbook'), path]
    cmd += ['-i', inventory or 'localhost,']
    if inventory is None:
        # Local runs use this checkout's Python: it has the kubernetes client & co.
        cmd += ['-c', 'local', '-e', 'ansible_python_interpreter=' + os.path.join(VENV_BIN, 'python')]
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as vars_file:
        json.dump(extra_vars or {}, vars_file)
    cmd += ['-e', '@' + vars_file.name]
    for name, text in (cli_vars or {}).items():
        cmd += ['-e', '%s=%s' % (name, text)]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    if limit:
        cmd += ['--limit', limit]
    if tags:
        cmd += ['--tags', ','.join(tags)]
    run_env = ansible_env({'ANSIBLE_STDOUT_CALLBACK': 'ansible.builtin.json',
                           'ANSIBLE_CALLBACK_RESULT_FORMAT': 'json'})
    run_env.update(env or {})
    return cmd, run_env, vars_file.name


def run_playbook(playbook, inventory=None, extra_vars=None, check=False, diff=False,
                 limit=None, tags=None, env=None, timeout=1800, cli_vars=None):
    """Run ansible-playbook on a playbook of this repository (or an absolute path).

    cli_vars ({name: text}) are passed as `-e name=text`, the form users type: every value arrives as a string.
    """
    cmd, run_env, vars_path = playbook_command(playbook, inventory, extra_vars, check, diff, limit, tags, env, cli_vars)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env,
                              cwd=REPO_ROOT, timeout=timeout, check=False)
    finally:
        os.unlink(vars_path)
    try:
        output = json.loads(proc.stdout)
    except ValueError:
        output = {}
    return PlaybookResult(rc=proc.returncode, output=output, stderr=proc.stderr, raw_stdout=proc.stdout)


def run_module(module, args, env=None, check=False, timeout=600, diff=False):
    """Run one module ad hoc on localhost; returns (rc, result dict)."""
    cmd = [os.path.join(VENV_BIN, 'ansible'), 'localhost', '-c', 'local', '-i', 'localhost,',
           '-e', 'ansible_python_interpreter=' + os.path.join(VENV_BIN, 'python'), '-m', module]
    if args:
        # `-a '{}'` would be taken as raw parameters, which most modules refuse.
        cmd += ['-a', json.dumps(args)]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    run_env = ansible_env({'ANSIBLE_LOAD_CALLBACK_PLUGINS': '1',
                           'ANSIBLE_STDOUT_CALLBACK': 'ansible.builtin.json',
                           'ANSIBLE_CALLBACK_RESULT_FORMAT': 'json'})
    run_env.update(env or {})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env, cwd=REPO_ROOT,
                          timeout=timeout, check=False)
    try:
        output = json.loads(proc.stdout)
        result = output['plays'][0]['tasks'][0]['hosts']['localhost']
    except (ValueError, KeyError, IndexError):
        result = {'unparsed_stdout': proc.stdout, 'stderr': proc.stderr}
    return proc.returncode, result
