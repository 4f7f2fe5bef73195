"""The wire formats of model servers: a closed set of adapters, each a request builder, an
answer parser and a stream-chunk parser. No I/O here; backends/http/backend.py sends.

| api       | endpoint              | fill-in-the-middle                       | stream  |
|-----------|-----------------------|------------------------------------------|---------|
| openai    | /v1/completions       | ``suffix``, or our rendered FIM prompt   | SSE     |
| llamacpp  | /infill               | input_prefix/suffix, snippets input_extra| SSE     |
| ollama    | /api/generate         | ``suffix``, or ``raw`` rendered prompt   | NDJSON  |
| codestral | /v1/fim/completions   | ``prompt`` + ``suffix``                  | SSE     |
| tgi       | /generate(_stream)    | our rendered FIM prompt                  | SSE     |
| (chat)    | /v1/chat/completions  | — (edit requests: ``chat_request``)      | SSE     |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from ghostcomplete.backends.base import CompletionPrompt
from ghostcomplete.backends.http.stream import MalformedAnswer
from ghostcomplete.ranker.prompt import comment_prefix


@dataclass(frozen=True)
class RequestOptions:
    """What the backend's settings add to every request."""

    model: str
    # Our FIM format when we render the prompt; None when the server formats prefix/suffix.
    fim_family: str | None
    stream: bool
    temperature: float
    max_tokens: int


@dataclass(frozen=True)
class WireRequest:
    endpoint: str  # path appended to the base URL (see endpoint_url)
    body: dict[str, Any]
    stream: bool


@dataclass(frozen=True)
class Chunk:
    text: str = ""
    done: bool = False


def headed_prefix(prompt: CompletionPrompt) -> str:
    """The prefix with the path and the snippets as comments above it (what our FIM renderer
    puts in the prompt), for servers that format prefix and suffix themselves."""
    mark = comment_prefix(prompt.language_id)
    parts = [f"{mark} Path: {prompt.path}\n"]
    for snippet in prompt.context.snippets:
        body = "\n".join(f"{mark} {line}" if line else mark for line in snippet.text.split("\n"))
        parts.append(f"{mark} Compare this snippet from {prompt.path_of(snippet.uri)}:\n{body}\n")
    return "".join(parts) + prompt.context.prefix


def _stop(prompt: CompletionPrompt, options: RequestOptions) -> list[str]:
    # The template's end markers mean something only when we rendered the template; OpenAI
    # allows at most four stop strings.
    return list(prompt.stop[:4]) if options.fim_family is not None else []


def _object(answer: Any, what: str) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise MalformedAnswer(f"{what} is not a JSON object")
    error = answer.get("error")
    if error:
        detail = error.get("message", error) if isinstance(error, dict) else error
        raise MalformedAnswer(f"the server reported an error: {str(detail)[:200]}")
    return answer


def _string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedAnswer(f"{what} is not a string")
    return value


def _choices(answer: Any, what: str) -> list[dict[str, Any]]:
    choices = _object(answer, what).get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise MalformedAnswer(f"{what} has no choices list")
    return sorted(choices, key=lambda choice: int(choice.get("index") or 0))


class OpenAICompletions:
    """POST /v1/completions: vLLM, SGLang, llama.cpp server, LM Studio, DeepSeek, Together."""

    name = "openai"
    framing = "sse"
    endpoints = ("/v1/completions",)

    def request(self, prompt: CompletionPrompt, options: RequestOptions) -> WireRequest:
        body: dict[str, Any] = {
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "stream": options.stream,
            "n": 1,
        }
        if options.model:
            body["model"] = options.model
        if options.fim_family is None:
            body["prompt"] = headed_prefix(prompt)
            body["suffix"] = prompt.context.suffix
        else:
            body["prompt"] = prompt.text
        if stop := _stop(prompt, options):
            body["stop"] = stop
        return WireRequest(self.endpoints[0], body, options.stream)

    def parse(self, answer: Any) -> list[str]:
        return [_string(c.get("text"), "choices[].text") for c in _choices(answer, "answer")]

    def parse_chunk(self, data: str, event: Any) -> Chunk:
        if data.strip() == "[DONE]":
            return Chunk(done=True)
        choices = _choices(event, "stream event")
        return Chunk(_string(choices[0].get("text"), "choices[].text") if choices else "")


class LlamaCppInfill:
    """POST /infill of llama.cpp's server: prefix, suffix and our snippets as input_extra."""

    name = "llamacpp"
    framing = "sse"
    endpoints = ("/infill",)

    def request(self, prompt: CompletionPrompt, options: RequestOptions) -> WireRequest:
        extra = [
            {"filename": prompt.path_of(snippet.uri), "text": snippet.text}
            for snippet in prompt.context.snippets
        ]
        body: dict[str, Any] = {
            "input_prefix": prompt.context.prefix,
            "input_suffix": prompt.context.suffix,
            "input_extra": extra,
            "prompt": "",
            "n_predict": options.max_tokens,
            "temperature": options.temperature,
            "stream": options.stream,
            "cache_prompt": True,
        }
        return WireRequest(self.endpoints[0], body, options.stream)

    def parse(self, answer: Any) -> list[str]:
        return [_string(_object(answer, "answer").get("content"), "content")]

    def parse_chunk(self, data: str, event: Any) -> Chunk:
        event = _object(event, "stream event")
        return Chunk(_string(event.get("content"), "content"), bool(event.get("stop")))


class OllamaGenerate:
    """POST /api/generate: ``suffix`` with the model's own template, or ``raw`` with ours."""

    name = "ollama"
    framing = "ndjson"
    endpoints = ("/api/generate",)

    def request(self, prompt: CompletionPrompt, options: RequestOptions) -> WireRequest:
        settings: dict[str, Any] = {
            "temperature": options.temperature,
            "num_predict": options.max_tokens,
        }
        if stop := _stop(prompt, options):
            settings["stop"] = stop
        body: dict[str, Any] = {"model": options.model, "stream": options.stream}
        if options.fim_family is None:
            body["prompt"] = headed_prefix(prompt)
            body["suffix"] = prompt.context.suffix
        else:
            body["prompt"] = prompt.text
            body["raw"] = True
        body["options"] = settings
        return WireRequest(self.endpoints[0], body, options.stream)

    def parse(self, answer: Any) -> list[str]:
        return [_string(_object(answer, "answer").get("response"), "response")]

    def parse_chunk(self, data: str, event: Any) -> Chunk:
        event = _object(event, "stream event")
        return Chunk(_string(event.get("response"), "response"), bool(event.get("done")))


def _chat_parse(answer: Any) -> list[str]:
    texts = []
    for choice in _choices(answer, "answer"):
        message = choice.get("message")
        if not isinstance(message, dict):
            raise MalformedAnswer("choices[].message is not an object")
        texts.append(_string(message.get("content"), "message.content"))
    return texts


def _chat_chunk(data: str, event: Any) -> Chunk:
    if data.strip() == "[DONE]":
        return Chunk(done=True)
    choices = _choices(event, "stream event")
    if not choices:
        return Chunk()
    delta = choices[0].get("delta") or {}
    if not isinstance(delta, dict):
        raise MalformedAnswer("choices[].delta is not an object")
    return Chunk(_string(delta.get("content"), "delta.content"))


class CodestralFim:
    """POST /v1/fim/completions of Mistral's Codestral (api.mistral.ai, codestral.mistral.ai)."""

    name = "codestral"
    framing = "sse"
    endpoints = ("/v1/fim/completions",)

    def request(self, prompt: CompletionPrompt, options: RequestOptions) -> WireRequest:
        body: dict[str, Any] = {
            "model": options.model or "codestral-latest",
            "prompt": headed_prefix(prompt),
            "suffix": prompt.context.suffix,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "stream": options.stream,
        }
        return WireRequest(self.endpoints[0], body, options.stream)

    def parse(self, answer: Any) -> list[str]:
        return _chat_parse(answer)

    def parse_chunk(self, data: str, event: Any) -> Chunk:
        return _chat_chunk(data, event)


class TgiGenerate:
    """POST /generate and /generate_stream of Hugging Face text-generation-inference."""

    name = "tgi"
    framing = "sse"
    endpoints = ("/generate", "/generate_stream")

    def request(self, prompt: CompletionPrompt, options: RequestOptions) -> WireRequest:
        parameters: dict[str, Any] = {
            "max_new_tokens": options.max_tokens,
            "return_full_text": False,
            "details": False,
        }
        # TGI rejects temperature 0: greedy decoding is "no sampling".
        if options.temperature > 0:
            parameters.update(do_sample=True, temperature=options.temperature)
        if stop := _stop(prompt, options):
            parameters["stop"] = stop
        endpoint = self.endpoints[1] if options.stream else self.endpoints[0]
        return WireRequest(
            endpoint, {"inputs": prompt.text, "parameters": parameters}, options.stream
        )

    def parse(self, answer: Any) -> list[str]:
        if isinstance(answer, list) and answer:  # some versions answer a one-element list
            answer = answer[0]
        return [_string(_object(answer, "answer").get("generated_text"), "generated_text")]

    def parse_chunk(self, data: str, event: Any) -> Chunk:
        event = _object(event, "stream event")
        token = event.get("token")
        if not isinstance(token, dict):
            raise MalformedAnswer("stream event has no token")
        text = "" if token.get("special") else _string(token.get("text"), "token.text")
        return Chunk(text, event.get("generated_text") is not None)


Adapter = OpenAICompletions | LlamaCppInfill | OllamaGenerate | CodestralFim | TgiGenerate

ADAPTERS: dict[str, Adapter] = {
    adapter.name: adapter
    for adapter in (
        OpenAICompletions(),
        LlamaCppInfill(),
        OllamaGenerate(),
        CodestralFim(),
        TgiGenerate(),
    )
}

CHAT_ENDPOINT = "/v1/chat/completions"


def chat_request(
    messages: list[dict[str, str]], options: RequestOptions, stop: tuple[str, ...] = ()
) -> WireRequest:
    """An OpenAI-compatible chat completion (edit requests; Ollama, llama.cpp, vLLM, TGI and
    the hosted APIs all speak it)."""
    body: dict[str, Any] = {
        "messages": messages,
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        "stream": options.stream,
    }
    if options.model:
        body["model"] = options.model
    if stop:
        body["stop"] = list(stop[:4])
    return WireRequest(CHAT_ENDPOINT, body, options.stream)


def parse_chat(answer: Any) -> list[str]:
    return _chat_parse(answer)


def parse_chat_chunk(data: str, event: Any) -> Chunk:
    return _chat_chunk(data, event)


def endpoint_url(base: str, endpoint: str, known: tuple[str, ...] = ()) -> str:
    """``endpoint`` appended to ``base``, without repeating what ``base`` already ends with:
    ``http://h/v1`` + ``/v1/completions`` is ``http://h/v1/completions``; a base that already
    ends with one of ``known`` endpoints is reduced to its base first."""
    parsed = urlparse(base)
    path = parsed.path.rstrip("/")
    for full in sorted(known, key=len, reverse=True):
        if path.endswith(full):
            path = path[: -len(full)]
            break
    parts = [part for part in endpoint.split("/") if part]
    for overlap in range(len(parts), 0, -1):
        if path.endswith("/" + "/".join(parts[:overlap])):
            path = path[: -len("/" + "/".join(parts[:overlap]))]
            break
    return parsed._replace(path=path + endpoint).geturl()
