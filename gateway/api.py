"""The public plugin API: everything a predicate or filter may import from `gateway`.

A filter package imports from this module only; the built-in filters and predicates do the same
(tests/test_plugin_api.py checks it, so the built-ins prove the API is enough). Every name in `__all__` is part
of the contract; anything else in `gateway` is internal and may change without notice. What process-wide state a
filter needs (metrics, keyed state, `forward:`, a logger, a clock) comes as services on `BuildContext.services`
(gateway.services), never as globals.
"""

from __future__ import annotations

from gateway.addresses import CidrSet, client_behind_proxies, nth_from_right
from gateway.body import Body, BytesBody
from gateway.errors import (
    BadRequest,
    CircuitOpen,
    ClientClosed,
    Forbidden,
    GatewayError,
    HeaderInjection,
    HeadersTooLarge,
    InjectedFault,
    InternalError,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServiceUnavailable,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
    UriTooLong,
)
from gateway.exchange import (
    Endpoint,
    Exchange,
    ExchangeKey,
    Filter,
    MatchHints,
    Next,
    PeerIdentity,
    Predicate,
    Response,
    UpgradeResponse,
    UpstreamRef,
)
from gateway.headers import Headers, check_name, check_value, is_token, to_wire
from gateway.hygiene import PRESERVE_HOST
from gateway.regex import Regex, RegexError, Replacement, compile_regex, replacement_validator
from gateway.resilience.backoff import backoff_delays, retry_after_seconds
from gateway.resilience.breaker import EXECUTION_EXCEPTION, Breaker, BreakerConfig, FailureStatus
from gateway.resilience.breaker import State as BreakerState
from gateway.resilience.budget import RetryBudget
from gateway.resilience.duration import parse_duration
from gateway.resilience.fallback import DEFER_FALLBACK, DeferredFallback
from gateway.resilience.retry_rules import EXCEPTION_REASONS, retry_reason, status_code
from gateway.routing.capture import match_any
from gateway.routing.hostpattern import HostPattern, compile_host_pattern
from gateway.routing.pathpattern import PathPattern, PatternError, compile_path_pattern
from gateway.routing.weights import WeightChooser
from gateway.services import (
    FilterServices,
    KeyedState,
    MetricError,
    MetricsFactory,
    PythonScript,
    Redispatch,
    ScriptStore,
    StateUnavailable,
)
from gateway.services.metrics import CounterChild, GaugeChild, HistogramChild
from gateway.services.metrics import Family as MetricFamily
from gateway.spec import (
    BANDS,
    Block,
    BuildContext,
    CidrSources,
    ComponentConfig,
    FilterSpec,
    HeaderName,
    PredicateSpec,
    RequestHeaderName,
    ResponseHeaderName,
    comma_items,
    compiles_each,
    header_name,
    header_value,
    one_or_many,
    replacing_regex,
    response_header_name,
    spring_enum,
    valid_regex,
)
from gateway.template import Template
from gateway.timeparse import INSTANT_DESCRIPTION, instant_text, parse_instant
from gateway.units import parse_data_size
from gateway.uri import (
    PathTemplate,
    check_authority,
    check_path_length,
    check_path_text,
    check_query_text,
    encode_query,
    finish_path,
    probe,
    remove_parameter,
    render_query_template,
    sub_within,
    valid_authority,
)

__all__ = [
    # Services a filter gets on BuildContext.services: metrics factory, keyed state (and its scripts and failure),
    # forward:, log, clock
    "CounterChild",
    "FilterServices",
    "GaugeChild",
    "HistogramChild",
    "KeyedState",
    "MetricError",
    "MetricFamily",
    "MetricsFactory",
    "PythonScript",
    "Redispatch",
    "ScriptStore",
    "StateUnavailable",
    # The exchange a filter sees, what it answers, and the contracts of a filter and a predicate
    "Endpoint",
    "Exchange",
    "ExchangeKey",
    "Filter",
    "MatchHints",
    "Next",
    "PeerIdentity",
    "Predicate",
    "Response",
    "UpgradeResponse",
    "UpstreamRef",
    # Specs: what a plugin module exports, its config base, its build context and the order bands
    "BANDS",
    "Block",
    "BuildContext",
    "ComponentConfig",
    "FilterSpec",
    "PredicateSpec",
    # Shared config validators and field types (header names and values, enums, regexes, lists, networks)
    "CidrSources",
    "HeaderName",
    "RequestHeaderName",
    "ResponseHeaderName",
    "comma_items",
    "compiles_each",
    "header_name",
    "header_value",
    "one_or_many",
    "replacing_regex",
    "response_header_name",
    "spring_enum",
    "valid_regex",
    # Headers and bodies
    "Body",
    "BytesBody",
    "Headers",
    "check_name",
    "check_value",
    "is_token",
    "to_wire",
    # Errors a filter raises or handles (each renders as problem+json with its status)
    "BadRequest",
    "CircuitOpen",
    "ClientClosed",
    "Forbidden",
    "GatewayError",
    "HeaderInjection",
    "HeadersTooLarge",
    "InjectedFault",
    "InternalError",
    "NotFound",
    "PayloadTooLarge",
    "RequestTimeout",
    "ServiceUnavailable",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamTimeout",
    "UriTooLong",
    # Templates and Java-syntax regexes on RE2 (every regex that sees request data)
    "Regex",
    "RegexError",
    "Replacement",
    "Template",
    "compile_regex",
    "replacement_validator",
    # Parsers of config values: durations, Spring DataSize, SCG instants
    "INSTANT_DESCRIPTION",
    "instant_text",
    "parse_data_size",
    "parse_duration",
    "parse_instant",
    # The path, query and authority rules shared by the path, parameter and redirect filters
    "PathTemplate",
    "check_authority",
    "check_path_length",
    "check_path_text",
    "check_query_text",
    "encode_query",
    "finish_path",
    "probe",
    "remove_parameter",
    "render_query_template",
    "sub_within",
    "valid_authority",
    # Client addresses and trusted proxies
    "CidrSet",
    "client_behind_proxies",
    "nth_from_right",
    # Matching for predicates: path and host patterns, variable capture, Weight groups
    "HostPattern",
    "PathPattern",
    "PatternError",
    "WeightChooser",
    "compile_host_pattern",
    "compile_path_pattern",
    "match_any",
    # Forwarding: keys a filter sets for the forwarder
    "PRESERVE_HOST",
    # Retry decisions: which outcomes are retried, SCG's status spellings, backoff and Retry-After
    "EXCEPTION_REASONS",
    "backoff_delays",
    "retry_after_seconds",
    "retry_reason",
    "status_code",
    "RetryBudget",
    # Circuit breaking: resilience4j's state machine, and what a breaker hands FallbackHeaders and Retry
    "Breaker",
    "BreakerConfig",
    "BreakerState",
    "FailureStatus",
    "EXECUTION_EXCEPTION",
    "DEFER_FALLBACK",
    "DeferredFallback",
]
