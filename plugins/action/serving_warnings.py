# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Risky but valid vLLM settings, said once each as a warning (or an error with llmscale_warnings_as_errors)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.serving_warnings import (
    mutable_image_warning,
    placeholder_host_warning,
    startup_budget_warning,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(('settings', 'as_errors'))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        settings = self._task.args.get('settings') or {}
        image = '%s:%s%s' % (settings.get('image_repository'), settings.get('image_tag'),
                             ('@' + settings['image_digest']) if settings.get('image_digest') else '')
        found = [message for message in (
            placeholder_host_warning('vllm_ingress_host', settings.get('ingress_host')),
            mutable_image_warning('vllm_image_tag', image),
            startup_budget_warning('vllm_startup_timeout_seconds', settings.get('startup_timeout_seconds')),
        ) + tuple(placeholder_host_warning('vllm_route_hostnames', host) for host in settings.get('route_hostnames') or [])
            if message]
        result.update(changed=False, serving_warnings=found)
        if found and self._task.args.get('as_errors'):
            result.update(failed=True, msg='; '.join(found) + ' (llmscale_warnings_as_errors is true)')
        elif found:
            result['warnings'] = found
        return result
