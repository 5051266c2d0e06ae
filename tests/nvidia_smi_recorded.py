"""Recorded nvidia-smi output, faults derived from it, and stand-in executables that print it.

The one helper for every test layer: unit tests import it; the integration
tests import it; Molecule's gpu_health scenario runs it as a script:

    python tests/nvidia_smi_recorded.py DEST RECORDED [OLD NEW]...

writes DEST, an executable nvidia-smi stand-in printing the recorded file
RECORDED (of tests/fixtures/nvidia-smi/h200-driver-580/) with each OLD text
replaced by NEW.
"""
import os
import stat
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H200_DIR = os.path.join(REPO_ROOT, 'tests', 'fixtures', 'nvidia-smi', 'h200-driver-580')
KERNEL_LOG_DIR = os.path.join(REPO_ROOT, 'tests', 'fixtures', 'kernel-log')
# The first line of a real boot log: no XID in it.
KERNEL_LOG_WITHOUT_XID = '[    0.000000] Linux version 6.1.0-27-amd64'


def read_recorded(name, directory=H200_DIR):
    with open(os.path.join(directory, name), encoding='utf-8') as handle:
        return handle.read()


def derive(text, *edits):
    """Apply (old, new) text edits, each of which must match exactly once: a fault variant of real output."""
    for old, new in edits:
        count = text.count(old)
        assert count == 1, 'edit %r matches %d times in the recorded output, expected once' % (old, count)
        text = text.replace(old, new)
    return text


def with_gpus(text, count):
    """The recorded single-GPU XML turned into ``count`` GPUs on consecutive PCI devices (06, 07, ...)."""
    start = text.index('\t<gpu id=')
    end = text.index('\t</gpu>') + len('\t</gpu>\n')
    gpu = text[start:end]
    copies = []
    for number in range(count):
        device = '%02X' % (6 + number)
        copies.append(gpu.replace('00000000:00:06.0', '00000000:00:%s.0' % device)
                      .replace('<pci_device>06</pci_device>', '<pci_device>%s</pci_device>' % device)
                      .replace('GPU-695ed85e-b1c2-887f-8f65-f0747f640f12', 'GPU-695ed85e-b1c2-887f-8f65-f0747f640f%02x' % number))
    text = text[:start] + ''.join(copies) + text[end:]
    return text.replace('<attached_gpus>1</attached_gpus>', '<attached_gpus>%d</attached_gpus>' % count)


def write_script(path, body):
    """An executable /bin/sh script at path; returns its path as a string."""
    path = str(path)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('#!/bin/sh\n' + body + '\n')
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def print_file(path, exit_code=0):
    """Script body printing a file and exiting with exit_code, as the real tool prints and exits."""
    return "cat '%s'\nexit %d" % (path, exit_code)


def nvidia_smi_stand_in(path, recorded=None, text=None, exit_code=0):
    """An nvidia-smi at path printing a recorded file, or text derived from one (kept next to it as path.out)."""
    path = str(path)
    if recorded is not None:
        source = os.path.join(H200_DIR, recorded)
    else:
        source = path + '.out'
        with open(source, 'w', encoding='utf-8') as handle:
            handle.write(text)
    return write_script(path, print_file(source, exit_code))


def kernel_log_stand_ins(bin_dir):
    """journalctl with no kernel lines and dmesg without an XID in bin_dir, so a test never reads this machine's log."""
    write_script(os.path.join(str(bin_dir), 'journalctl'), 'exit 0')
    write_script(os.path.join(str(bin_dir), 'dmesg'), "echo '%s'" % KERNEL_LOG_WITHOUT_XID)
    return str(bin_dir)


def main(argv):
    if len(argv) < 2 or len(argv) % 2:
        sys.exit('usage: %s DEST RECORDED [OLD NEW]...' % os.path.basename(__file__))
    dest, recorded, pairs = argv[0], argv[1], argv[2:]
    edits = list(zip(pairs[0::2], pairs[1::2]))
    nvidia_smi_stand_in(dest, text=derive(read_recorded(recorded), *edits))


if __name__ == '__main__':
    main(sys.argv[1:])
