"""Offline stand-in for the get-pip script that ansible-test downloads.

ansible-test runs it as ``python get-pip.py [pip options] pip==X ...`` inside a
new virtual environment. Bootstrapping pip from the interpreter's bundled wheel
(ensurepip) and then letting that pip install the requested packages from the
package index gives the same result without fetching a script from the internet.
"""
import os
import subprocess
import sys


def main():
    # ensurepip runs in its own process: in-process it sets PIP_CONFIG_FILE=/dev/null,
    # which would hide /etc/pip.conf (and its cert= setting) from the install below.
    env = dict(os.environ)
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade'], env=env)
    args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
    return subprocess.call([sys.executable, '-m', 'pip', 'install'] + args, env=env)


if __name__ == '__main__':
    sys.exit(main())
