"""The insights chat's LLM: any server that speaks the OpenAI protocol.

With no LLM_BASE_URL/LLM_API_KEY the deterministic offline planner answers instead.
"""

from config.settings.env import env

LLM_BASE_URL = env.str("LLM_BASE_URL", default="")
LLM_API_KEY = env.str("LLM_API_KEY", default="")
LLM_MODEL = env.str("LLM_MODEL", default="gpt-4o-mini")
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=20.0)
