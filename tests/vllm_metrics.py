"""vLLM V1's Prometheus metric names and labels, as vLLM 0.33 exposes them.

Read from the source that defines them: vllm/v1/metrics/loggers.py
(PrometheusStatLogger). Counters are exposed with the _total suffix,
histograms as _bucket/_sum/_count; every series carries model_name and engine,
vllm:request_success also finished_reason. The monitoring tests check the
rules and dashboards against these names, and the scaling harness's simulated
vLLM exporter serves only these names.
"""

VLLM_GAUGES = {
    'vllm:num_requests_running', 'vllm:num_requests_waiting', 'vllm:kv_cache_usage_perc',
    'vllm:engine_sleep_state', 'vllm:cache_config_info', 'vllm:lora_requests_info',
}
VLLM_COUNTERS = {  # as exposed, with the _total suffix
    'vllm:prompt_tokens_total', 'vllm:generation_tokens_total', 'vllm:request_success_total',
    'vllm:num_preemptions_total', 'vllm:prefix_cache_queries_total', 'vllm:prefix_cache_hits_total',
    'vllm:external_prefix_cache_queries_total', 'vllm:external_prefix_cache_hits_total',
    'vllm:mm_cache_queries_total', 'vllm:mm_cache_hits_total',
}
VLLM_HISTOGRAMS = {
    'vllm:e2e_request_latency_seconds', 'vllm:time_to_first_token_seconds', 'vllm:inter_token_latency_seconds',
    'vllm:request_time_per_output_token_seconds', 'vllm:request_queue_time_seconds',
    'vllm:request_inference_time_seconds', 'vllm:request_prefill_time_seconds', 'vllm:request_decode_time_seconds',
    'vllm:request_prompt_tokens', 'vllm:request_generation_tokens', 'vllm:iteration_tokens_total',
    'vllm:request_max_num_generation_tokens', 'vllm:request_params_n', 'vllm:request_params_max_tokens',
}
VLLM_LABELS = {'model_name', 'engine', 'finished_reason', 'le'}
