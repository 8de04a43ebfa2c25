"""`model-gateway demo`: the simulator and the gateway in one process, ready to call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
import textwrap

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.server import run_loop, start
from gateway.simulator import SimulatorSettings, create_simulator
from policies.auth import hash_key

DEMO_KEY = "demo-key-not-secret"


def demo_config(simulator_url: str, port: int, database: str) -> GatewayConfig:
    return GatewayConfig(
        server={"host": "127.0.0.1", "port": port},
        database={"url": f"sqlite:///{database}"},
        consumers=[{"name": "demo", "api_keys": [hash_key(DEMO_KEY)], "deployments": ["*"]}],
        deployments=[
            {
                "name": "gpt-4o-mini",
                "model": "gpt-4o-mini",
                "backends": [{"url": simulator_url, "provider": "azure-openai",
                              "deployment": "gpt-4o-mini"}],
            },
            {
                "name": "mistral-large",
                "model": "mistral-large-2411",
                "provider": "Mistral",
                "backends": [{"url": simulator_url, "provider": "azure-ai-inference"}],
            },
            {
                "name": "gpt-5-mini",
                "model": "gpt-5-mini",
                "backends": [{"url": simulator_url, "provider": "azure-openai", "deployment": "gpt-5-mini"}],
            },
            {
                "name": "claude-sonnet-4-5",
                "model": "claude-sonnet-4-5",
                "provider": "Anthropic",
                "backends": [{"url": simulator_url + "/anthropic", "provider": "anthropic"}],
            },
            {
                "name": "text-embedding-3-small",
                "model": "text-embedding-3-small",
                "model_type": "embeddings",
                "backends": [{"url": simulator_url + "/v1", "provider": "openai"}],
            },
            # Images and audio, on both providers that serve them.
            {
                "name": "gpt-image-1",
                "model": "gpt-image-1",
                "backends": [{"url": simulator_url, "provider": "azure-openai",
                              "deployment": "gpt-image-1"}],
            },
            {
                "name": "gpt-4o-transcribe",
                "model": "gpt-4o-transcribe",
                "backends": [{"url": simulator_url, "provider": "azure-openai",
                              "deployment": "gpt-4o-transcribe"}],
            },
            {
                "name": "gpt-4o-mini-tts",
                "model": "gpt-4o-mini-tts",
                "backends": [{"url": simulator_url + "/v1", "provider": "openai"}],
            },
        ],
    )


def banner(url: str) -> str:
    """What the demo prints: its aliases, which clients each answers, and examples to
    paste (README.md's "Any client on any model" holds the same, and Codex's config)."""
    return textwrap.dedent(f"""\
        Model Gateway demo: gateway {url} -> built-in upstream simulator
        demo key: {DEMO_KEY}
        aliases, each answering Chat Completions, Responses and Anthropic Messages clients,
        natively or translated (/v1/models says which):
          gpt-4o-mini, gpt-5-mini   Azure OpenAI chat (and responses)
          mistral-large             Mistral on Foundry's model inference (chat)
          claude-sonnet-4-5         Anthropic messages: it answers chat clients too
          text-embedding-3-small    embeddings
          gpt-image-1, gpt-4o-transcribe, gpt-4o-mini-tts   images, transcription, speech
        Claude Code answers on gpt-5-mini and mistral-large, Codex on mistral-large and
        claude-sonnet-4-5.

        curl {url}/v1/chat/completions -H "api-key: {DEMO_KEY}" -H "Content-Type: application/json" \\
          -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "Hello"}}]}}'

        python - <<'EOF'
        from openai import OpenAI
        client = OpenAI(base_url="{url}/v1", api_key="{DEMO_KEY}")
        reply = client.chat.completions.create(model="claude-sonnet-4-5",
                                               messages=[{{"role": "user", "content": "Hello"}}])
        print(reply.choices[0].message.content)
        EOF

        python - <<'EOF'
        from openai import OpenAI
        client = OpenAI(base_url="{url}/v1", api_key="{DEMO_KEY}")
        with client.audio.speech.with_streaming_response.create(
                model="gpt-4o-mini-tts", voice="alloy", input="Hello") as speech:
            speech.stream_to_file("hello.mp3")
        with open("hello.mp3", "rb") as audio:
            print(client.audio.transcriptions.create(model="gpt-4o-transcribe", file=audio).text)
        EOF

        python - <<'EOF'
        from anthropic import Anthropic
        client = Anthropic(base_url="{url}/anthropic", api_key="{DEMO_KEY}")
        reply = client.messages.create(model="claude-sonnet-4-5", max_tokens=256,
                                       messages=[{{"role": "user", "content": "Hello"}}])
        print(reply.content[0].text)
        EOF

        ANTHROPIC_BASE_URL={url}/anthropic ANTHROPIC_API_KEY={DEMO_KEY} \\
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 ENABLE_TOOL_SEARCH=false \\
        ANTHROPIC_DEFAULT_HAIKU_MODEL=gpt-5-mini \\
          claude -p "Say hello in one line" --output-format json --model gpt-5-mini

        Codex: with README.md's config.toml ("Any client on any model") naming this gateway:
          codex exec -s read-only --skip-git-repo-check -m mistral-large "Say hello in one line"

        Ctrl-C stops it.""")


async def _main(port: int, ttft_ms: float, token_ms: float) -> None:
    # Ctrl-C and SIGTERM both end the wait below, so that everything started here is
    # stopped and the temporary folder (its database) removed, whichever is sent.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    folder = tempfile.mkdtemp(prefix="model-gateway-demo-")
    try:
        simulator = create_simulator(SimulatorSettings(ttft_ms=ttft_ms, token_ms=token_ms))
        sim_runner, sim_port = await start(simulator, "127.0.0.1", 0)
        try:
            config = demo_config(f"http://127.0.0.1:{sim_port}", port, f"{folder}/demo.db")
            app = create_app(config)
            runner, bound = await start(app, "127.0.0.1", port, shutdown_timeout=2,
                                        limits=config.server)
            try:
                print(banner(f"http://127.0.0.1:{bound}"), flush=True)
                await stop.wait()
            finally:
                await runner.cleanup()
        finally:
            await sim_runner.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(port: int, ttft_ms: float = 50.0, token_ms: float = 20.0) -> None:
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(lambda: _main(port, ttft_ms, token_ms))
