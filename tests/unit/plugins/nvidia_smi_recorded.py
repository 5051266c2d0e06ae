"""Recorded nvidia-smi output, and faults derived from it by changing only the fields under test."""
import os

from helpers import REPO_ROOT

H200_DIR = os.path.join(REPO_ROOT, 'tests', 'fixtures', 'nvidia-smi', 'h200-driver-580')
KERNEL_LOG_DIR = os.path.join(REPO_ROOT, 'tests', 'fixtures', 'kernel-log')


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
