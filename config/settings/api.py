from config.settings.env import env

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "config.api.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "config.api.api_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Interlude API",
    "DESCRIPTION": "Ad decisions, event tracking, campaign management and reports.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
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
