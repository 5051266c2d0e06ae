# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way the collection's modules run a command line tool.

In the spirit of community.general's cmd_runner, but smaller: each CLI a
module uses is declared once, as a `Command` (which binary, how its
arguments are built, which exit codes are a success, how its output is
parsed), and a module runs it by name through a `CommandRunner`. Parsers
stay pure functions of the output, unit-tested on recorded real output;
nothing here knows about any particular tool.

    LSBLK = Command('lsblk', ['--json', '--bytes'], parse=from_stdout(parse_lsblk))
    BLKID = Command('blkid', lambda device: ['--probe', device], ok_rcs=None,
                    parse=lambda result: parse_blkid(result.rc, result.stdout, result.stderr))

    runner = CommandRunner(module, {'lsblk': LSBLK, 'blkid': BLKID})
    devices = runner.run('lsblk')                  # parsed value, or CommandError
    probe = runner.run('blkid', device='/dev/x')   # arguments by keyword
    runner.available('pvs')                        # is the binary there at all?

API:
- Command(binary, args=(), parse=None, ok_rcs=(0,)): `args` is a list, or a
  function of the keyword arguments of `run` returning a list; `parse`
  takes a CommandResult (default: the CommandResult itself is returned);
  `ok_rcs=None` hands every exit code to `parse` (for tools like blkid whose
  exit code is part of the answer).
- CommandRunner(module, commands, binaries=None, lang='C'): `binaries` maps a
  command name to a path or name given by the user (e.g. a module option),
  which replaces the declared binary; commands run with LC_ALL/LANG set to
  `lang`, so the output parsed is the one recorded.
- runner.run(name, **kwargs), runner.result(name, **kwargs) (the raw
  CommandResult, never raising on the exit code), runner.available(name),
  runner.path(name).
- CommandError: the binary is missing or exited with a code not in ok_rcs;
  str() names the command line, the exit code and its last line of output.
  Errors a parser raises pass through unchanged.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
from collections import namedtuple


class CommandError(Exception):
    """A declared command could not be run, or exited with a code its declaration does not accept."""

    def __init__(self, message, result=None):
        super(CommandError, self).__init__(message)
        self.result = result


class CommandResult(namedtuple('CommandResult', 'argv rc stdout stderr')):
    """What one run printed; argv is the full command line run."""

    __slots__ = ()

    def last_line(self):
        """The last non-empty line of stderr, else of stdout: what a tool says when it fails."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in (text or '').splitlines() if line.strip()]
            if lines:
                return lines[-1]
        return ''

    def describe(self):
        message = self.last_line()
        return '%s exited with %s%s' % (' '.join(self.argv), self.rc, (': ' + message) if message else '')


def from_stdout(parser):
    """A `parse` for a Command whose parser reads only stdout."""
    return lambda result: parser(result.stdout)


class Command(object):
    """One command line tool, declared once: binary, arguments, accepted exit codes, parser."""

    def __init__(self, binary, args=(), parse=None, ok_rcs=(0,)):
        self.binary = binary
        self.args = args
        self.parse = parse
        self.ok_rcs = None if ok_rcs is None else tuple(ok_rcs)

    def argv(self, path, **kwargs):
        if callable(self.args):
            args = self.args(**kwargs)
        elif kwargs:
            raise TypeError('%s takes no arguments, got %s' % (self.binary, ', '.join(sorted(kwargs))))
        else:
            args = self.args
        return [path] + [str(arg) for arg in args]


class CommandRunner(object):
    """Runs the declared commands of one module through AnsibleModule.run_command."""

    def __init__(self, module, commands, binaries=None, lang='C'):
        self.module = module
        self.commands = dict(commands)
        self.binaries = dict(binaries or {})
        self.lang = lang
        self._paths = {}

    def _binary(self, name):
        if name not in self.commands:
            raise KeyError('no command %r is declared (declared: %s)' % (name, ', '.join(sorted(self.commands))))
        return self.binaries.get(name) or self.commands[name].binary

    def path(self, name):
        """Absolute path of the command's binary; CommandError when it is not there."""
        if name not in self._paths:
            binary = self._binary(name)
            if os.sep in binary:  # a path the user gave: used as it is, never searched
                found = binary if os.path.isfile(binary) and os.access(binary, os.X_OK) else None
            else:
                found = self.module.get_bin_path(binary)
            self._paths[name] = found
        if not self._paths[name]:
            raise CommandError('%s: %s was not found%s' % (
                name, self._binary(name), '' if os.sep in self._binary(name) else ' on PATH'))
        return self._paths[name]

    def available(self, name):
        try:
            self.path(name)
        except CommandError:
            return False
        return True

    def result(self, name, **kwargs):
        """Run the command; the CommandResult whatever the exit code (CommandError only if it cannot start)."""
        argv = self.commands[name].argv(self.path(name), **kwargs)
        environ = {'LC_ALL': self.lang, 'LANG': self.lang, 'LANGUAGE': self.lang} if self.lang else {}
        rc, stdout, stderr = self.module.run_command(argv, environ_update=environ)
        return CommandResult(argv, rc, stdout, stderr)

    def run(self, name, **kwargs):
        """Run the command and return its parsed output; CommandError on an exit code it does not accept."""
        command = self.commands[name]
        result = self.result(name, **kwargs)
        if command.ok_rcs is not None and result.rc not in command.ok_rcs:
            raise CommandError(result.describe(), result)
        return command.parse(result) if command.parse else result
