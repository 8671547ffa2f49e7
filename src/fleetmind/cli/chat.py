"""``fleetmind chat``: a terminal chat with the agent through the OpenAI-compatible gateway, streamed."""

from __future__ import annotations

import sys

import typer

from fleetmind.contracts.names import ROUTED_MODEL
from fleetmind.stack_settings import default

DEFAULT_BASE_URL = f"http://{default('host')}:{default('gateway_port')}/v1"


def chat(
    message: str = typer.Option(None, "--message", "-m", help="Send one message, print the answer and exit."),
    base_url: str = typer.Option(
        DEFAULT_BASE_URL, envvar="FLEETMIND_BASE_URL", help="The gateway's /v1 URL (FLEETMIND_BASE_URL)."
    ),
    api_key: str = typer.Option(
        None,
        envvar=["FLEETMIND_API_KEY", "OPENAI_API_KEY"],
        help="An API key (FLEETMIND_API_KEY).",
        show_default=False,
    ),
    model: str = typer.Option(
        ROUTED_MODEL, help="'fleetmind' lets the agent route; an expert's name asks it directly."
    ),
    system: str = typer.Option(None, "--system", help="A system prompt for the conversation."),
    temperature: float = typer.Option(None, help="Sampling temperature."),
) -> None:
    """Talk to the agent in the terminal (history is kept for the session; Ctrl-D or /exit ends it)."""
    import openai

    if not api_key:
        typer.echo("error: no API key: pass --api-key or set FLEETMIND_API_KEY (`fleetmind keys create`)", err=True)
        raise typer.Exit(2)
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []

    def ask(text: str) -> None:
        history.append({"role": "user", "content": text})
        extra = {} if temperature is None else {"temperature": temperature}
        parts: list[str] = []
        stream = client.chat.completions.create(model=model, messages=history, stream=True, **extra)  # type: ignore[call-overload]
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
                sys.stdout.write(parts[-1])
                sys.stdout.flush()
        sys.stdout.write("\n")
        history.append({"role": "assistant", "content": "".join(parts)})

    try:
        if message is not None:
            ask(message)
            return
        interactive = sys.stdin.isatty()
        while True:
            try:
                text = input("you> " if interactive else "")
            except EOFError:
                break
            if text.strip() in {"/exit", "/quit"}:
                break
            if text.strip():
                ask(text)
    except openai.APIConnectionError:
        typer.echo(f"error: nothing answers at {base_url}: is `fleetmind up` running?", err=True)
        raise typer.Exit(1) from None
    except openai.APIStatusError as exc:
        typer.echo(f"error: {exc.status_code}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    app.command()(chat)
