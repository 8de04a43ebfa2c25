"""What the image and audio tests share: a config with media deployments on both
providers that serve them (and priced the ways a deployment can be), clients of both
kinds, a deadline-bound wait, and raw multipart bodies in the layouts real SDKs send."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from openai import AzureOpenAI, OpenAI

from tests.conftest import KEY_B, Stack, default_config

AZURE_VERSION = "2025-04-01-preview"
DALLE_PRICES = [{"size": "1024x1024", "quality": "standard", "price": 0.04},
                {"quality": "hd", "price": 0.12}, {"price": 0.08}]


def media_config(sim: str, **extra: Any) -> dict[str, Any]:
    """The default config plus an image, transcription and speech deployment on each of
    azure-openai and openai; `extra` is merged into the config."""
    azure = {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}
    oai = {"type": "api-key", "key_env": "TEST_OPENAI_KEY"}
    config = default_config(sim)
    config["deployments"] += [
        {"name": "gpt-image-1", "model": "gpt-image-1",
         "pricing": {"input_per_million": 5, "output_per_million": 40},
         "backends": [{"url": sim, "provider": "azure-openai", "deployment": "image-east",
                       "auth": azure}]},
        {"name": "dall-e-3", "model": "dall-e-3", "pricing": {"per_image": DALLE_PRICES},
         "backends": [{"url": sim + "/v1", "provider": "openai", "auth": oai}]},
        {"name": "whisper", "model": "whisper-1", "pricing": {"per_audio_second": 0.0001},
         "backends": [{"url": sim, "provider": "azure-openai", "deployment": "whisper-east",
                       "auth": azure}]},
        {"name": "gpt-4o-transcribe", "model": "gpt-4o-transcribe",
         "pricing": {"input_per_million": 2.5, "output_per_million": 10},
         "backends": [{"url": sim + "/v1", "provider": "openai", "auth": oai}]},
        {"name": "gpt-4o-mini-tts", "model": "gpt-4o-mini-tts",
         "backends": [{"url": sim, "provider": "azure-openai", "deployment": "tts-east",
                       "auth": azure}]},
        {"name": "tts-1", "model": "tts-1", "pricing": {"per_million_characters": 15},
         "backends": [{"url": sim + "/v1", "provider": "openai", "auth": oai}]},
    ]
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def with_media(**extra: Any) -> Callable[[str], dict[str, Any]]:
    return lambda sim: media_config(sim, **extra)


def clients(stack: Stack, key: str = KEY_B) -> dict[str, OpenAI]:
    """The openai SDK as a client of OpenAI and as one of Azure OpenAI (which rewrites the
    media paths to /openai/deployments/{model}/...?api-version=)."""
    return {"openai": OpenAI(base_url=stack.url + "/v1", api_key=key, max_retries=0),
            "azure": AzureOpenAI(azure_endpoint=stack.url, api_key=key, api_version=AZURE_VERSION,
                                 max_retries=0)}


def wait_until(check: Callable[[], Any], seconds: float = 30.0, every: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy, within a generous deadline."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {check}")
        time.sleep(every)


BOUNDARY = "test-boundary-0123456789"


def part(name: str, value: bytes | str, filename: str | None = None,
         content_type: str | None = None) -> bytes:
    head = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        head += f'; filename="{filename}"'
    lines = [f"--{BOUNDARY}", head]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    data = value.encode() if isinstance(value, str) else value
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data + b"\r\n"


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
