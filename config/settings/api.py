from config.settings.env import env

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON only: every endpoint takes JSON, and the schema advertises what the parsers take
    # (a form body is a 415 in the error envelope, not an advertised type that is refused).
    "DEFAULT_PARSER_CLASSES": ["config.api.JSONParser"],
    # Per account key (ads.account_api.AccountKeyThrottle), counted in the default cache:
    # Redis when REDIS_URL is set, so every process shares the count; local memory otherwise.
    "DEFAULT_THROTTLE_RATES": {"account_key": env.str("ACCOUNT_API_RATE", default="600/min")},
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "config.api.api_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Interlude API",
    "DESCRIPTION": "Ad decisions, event tracking, campaign management and reports.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # One name per choice set that several fields share.
    "ENUM_NAME_OVERRIDES": {
        "DeliveryStatusEnum": "ads.models.DeliveryStatus",
        "RegionEnum": "catalog.models.Region",
        "DeviceEnum": "catalog.models.Device",
    },
    # /api/docs/ loads Swagger UI from drf-spectacular-sidecar's static files, so it works
    # offline and its version is the pinned one (the default is a CDN's @latest).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The VAST and VMAP ad tags are plain Django views: a hook documents them.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "ads.vast.schema.ad_tag_paths",
    ],
}

# Ad tags (VAST, VMAP) answered per client address per minute; each player id has its own
# limit too, set in admin. A household's devices share an address: a title takes one VMAP
# and a VAST per break.
VAST_REQUESTS_PER_ADDRESS_PER_MINUTE = env.int("VAST_REQUESTS_PER_ADDRESS_PER_MINUTE", default=120)
