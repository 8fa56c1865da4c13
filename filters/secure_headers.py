"""SecureHeaders: add browser security headers to responses, with SCG's defaults minus X-Xss-Protection.

A header the upstream already sent is left as it is (SCG does the same), so a backend with its own policy
keeps it. SCG's global `secure-headers.*` properties become arguments here; put the filter in
`default-filters` to apply one policy everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field, field_validator

from gateway.api import BuildContext, ComponentConfig, Exchange, FilterSpec, Next, Response, header_value, to_wire

#: Header (lower-cased) → (config field holding its value, name as sent). Order is the order they are added.
HEADERS: Mapping[str, tuple[str, str]] = {
    "strict-transport-security": ("strict_transport_security", "Strict-Transport-Security"),
    "x-frame-options": ("frame_options", "X-Frame-Options"),
    "x-content-type-options": ("content_type_options", "X-Content-Type-Options"),
    "referrer-policy": ("referrer_policy", "Referrer-Policy"),
    "content-security-policy": ("content_security_policy", "Content-Security-Policy"),
    "x-download-options": ("download_options", "X-Download-Options"),
    "x-permitted-cross-domain-policies": ("permitted_cross_domain_policies", "X-Permitted-Cross-Domain-Policies"),
    "permissions-policy": ("permissions_policy", "Permissions-Policy"),
}
#: Sent unless disabled; Permissions-Policy must be enabled (its default switches off many browser features).
DEFAULT_ON = frozenset(HEADERS) - {"permissions-policy"}
#: SCG sends `X-Xss-Protection: 1 ; mode=block` by default. The XSS auditor it drove is gone from browsers, and
#: where it existed it could be abused to leak data across origins, so it is never sent; disabling it is a no-op.
LEGACY = "x-xss-protection"

CSP_DEFAULT = (
    "default-src 'self' https:; font-src 'self' https: data:; img-src 'self' https: data:; "
    "object-src 'none'; script-src https:; style-src 'self' https: 'unsafe-inline'"
)
PERMISSIONS_DEFAULT = (
    "accelerometer=(), ambient-light-sensor=(), autoplay=(), battery=(), camera=(), cross-origin-isolated=(), "
    "display-capture=(), document-domain=(), encrypted-media=(), execution-while-not-rendered=(), "
    "execution-while-out-of-viewport=(), fullscreen=(), geolocation=(), gyroscope=(), keyboard-map=(), "
    "magnetometer=(), microphone=(), midi=(), navigation-override=(), payment=(), picture-in-picture=(), "
    "publickey-credentials-get=(), screen-wake-lock=(), sync-xhr=(), usb=(), web-share=(), xr-spatial-tracking=()"
)


def _names(value: object) -> object:
    # SCG binds `disable: x-frame-options,strict-transport-security` (one comma-separated string) too.
    if isinstance(value, str):
        return [part for part in (p.strip() for p in value.split(",")) if part]
    return value


def _known(values: list[str], *, allow_legacy: bool) -> list[str]:
    out = []
    for value in values:
        name = value.lower()
        if name == LEGACY and allow_legacy:
            continue
        if name == LEGACY:
            raise ValueError("x-xss-protection is not supported: browsers dropped the XSS auditor; rely on the CSP")
        if name not in HEADERS:
            raise ValueError(f"unknown secure header {value!r}; known: {', '.join(HEADERS)}")
        out.append(name)
    return out


def _value(default: str, description: str) -> str:
    return Field(default, description=description, min_length=1, max_length=4096)


class SecureHeadersConfig(ComponentConfig):
    disable: list[str] = Field(
        default_factory=list, description="Lower-case names of default headers not to send.", max_length=16
    )
    enable: list[str] = Field(
        default_factory=list,
        description="Lower-case names of opt-in headers to send (`permissions-policy`).",
        max_length=16,
    )
    strict_transport_security: str = _value("max-age=631138519", "Strict-Transport-Security value.")
    frame_options: str = _value("DENY", "X-Frame-Options value.")
    content_type_options: str = _value("nosniff", "X-Content-Type-Options value.")
    referrer_policy: str = _value("no-referrer", "Referrer-Policy value.")
    content_security_policy: str = _value(CSP_DEFAULT, "Content-Security-Policy value.")
    download_options: str = _value("noopen", "X-Download-Options value.")
    permitted_cross_domain_policies: str = _value("none", "X-Permitted-Cross-Domain-Policies value.")
    permissions_policy: str = _value(
        PERMISSIONS_DEFAULT, "Permissions-Policy value, sent only when `enable` lists permissions-policy."
    )

    _lists = field_validator("disable", "enable", mode="before")(_names)
    _values = field_validator(*(field for field, _ in HEADERS.values()))(header_value)

    @field_validator("disable")
    @classmethod
    def _disable(cls, value: list[str]) -> list[str]:
        return _known(value, allow_legacy=True)

    @field_validator("enable")
    @classmethod
    def _enable(cls, value: list[str]) -> list[str]:
        return _known(value, allow_legacy=False)


def headers_to_send(config: SecureHeadersConfig) -> tuple[tuple[str, str], ...]:
    """(name, wire value) of each header this route adds: defaults, plus enabled, minus disabled (disable wins)."""
    chosen = (DEFAULT_ON | set(config.enable)) - set(config.disable)
    return tuple((name, to_wire(getattr(config, field))) for lower, (field, name) in HEADERS.items() if lower in chosen)


class SecureHeaders:
    __slots__ = ("headers",)

    def __init__(self, headers: tuple[tuple[str, str], ...]) -> None:
        self.headers = headers

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        response = await call_next(exchange)
        for name, value in self.headers:
            response.headers.setdefault(name, value)  # the upstream's own policy wins, as in SCG
        return response


def build(config: SecureHeadersConfig, context: BuildContext) -> SecureHeaders:
    return SecureHeaders(headers_to_send(config))


SPEC = FilterSpec(
    name="SecureHeaders",
    order=915,
    config=SecureHeadersConfig,
    build=build,
    summary=(
        "Adds HSTS, X-Frame-Options, X-Content-Type-Options, Referrer-Policy, a CSP, X-Download-Options and "
        "X-Permitted-Cross-Domain-Policies (and opt-in Permissions-Policy) unless the upstream sent them."
    ),
    example={"disable": ["x-frame-options"], "enable": ["permissions-policy"]},
    status="stable",
)
