"""A small OpenAI-compatible streaming server for benchmark-client tests, with a latency law we know.

Per request: the first token comes ``ttft = prefill_ms_per_token x prompt tokens`` after the
request arrives; every later token comes ``a_ms + b_ms x N`` after the previous one, where N is
the number of requests in flight (this one included) when that token is scheduled. Tokens are
scheduled on absolute deadlines, so timer overshoot does not accumulate.

With N requests in flight, TPOT = a + b*N, so a TPOT threshold T is met up to N* = (T - a) / b,
and by Little's law the achieved rate there is ``N* / (ttft + (output_len - 1) * T)``
requests/s (see `true_max_rate`), whatever the client's concurrency or arrival process.

With ``Latency(batched=True)`` the server instead runs one engine loop, iteration by iteration, as
vLLM does: each step takes ``a_ms + b_ms x sequences in the batch + prefill_ms_per_token x prompt
tokens prefilled in that step`` and gives every sequence in the batch one token. A request joins the
batch at the next step boundary; its prefill is that whole step, which also samples its first token,
so a request with n output tokens holds n steps. No batch or token limit. This is the replica model
of ``melange_nb.simulate`` with ``step_ms {base: a, per_seq: b, per_prefill_token: prefill}``.

Endpoints: GET /v1/models, POST /v1/completions and /v1/chat/completions (streaming SSE or not).
Every reply token is the text " token" (one token in the Llama-2/Mistral vocabulary), and the stream
ends with a usage chunk. Runs on 127.0.0.1 in a background thread; stdlib asyncio only.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus


@dataclass(frozen=True)
class Latency:
    a_ms: float = 12.0                   # per-token delay is a + b x in-flight requests (itself included)
    b_ms: float = 4.0
    prefill_ms_per_token: float = 0.5    # TTFT per prompt token
    batched: bool = False                # True: iteration-level steps shared by every request (see above)

    def tpot_ms(self, concurrency: float) -> float:
        return self.a_ms + self.b_ms * concurrency

    def true_max_rate(self, tpot_slo_ms: float, input_len: float, output_len: float, overhead_ms: float = 0.0) -> float:
        """Max achieved requests/s with mean TPOT <= the threshold (closed form). By Little's law the
        rate is N / latency with N requests in flight; TPOT = a + b N is at the threshold for
        N* = (T - a) / b, and one request's latency there is TTFT + (output - 1) T, plus
        `overhead_ms` of per-request time outside this law (HTTP, client turnaround, stream end)."""
        c_star = (tpot_slo_ms - self.a_ms) / self.b_ms
        latency_ms = self.prefill_ms_per_token * input_len + (output_len - 1) * tpot_slo_ms + overhead_ms
        return c_star / (latency_ms / 1000.0)


class LlmTestServer:
    """Start with ``with LlmTestServer(count_tokens) as server: server.base_url``."""

    def __init__(self, count_tokens, latency: Latency = Latency(), model: str = "test-model"):
        self.count_tokens, self.latency, self.model = count_tokens, latency, model
        self.in_flight = 0
        self.served = 0
        self.steps = 0
        self.port = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test server did not start")
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self):
        self._stop = asyncio.Event()
        self._joining: list = []                          # batched mode: requests waiting for the next step
        self._wake = asyncio.Event()
        engine = asyncio.ensure_future(self._engine()) if self.latency.batched else None
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=256)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
        if engine is not None:
            engine.cancel()

    async def _handle(self, reader, writer):
        try:
            while True:                                  # keep-alive: several requests per connection
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", 0) or 0))
                path = path.split("?")[0]
                if method == "GET" and path == "/v1/models":
                    await self._json(writer, {"object": "list", "data": [
                        {"id": self.model, "object": "model", "created": 0, "owned_by": "test", "root": self.model}]})
                elif method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
                    await self._generate(writer, json.loads(body or b"{}"), chat=path.endswith("chat/completions"))
                else:
                    await self._json(writer, {"error": {"message": f"no route {method} {path}"}}, status=404)
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _json(self, writer, obj, status=200):
        data = json.dumps(obj).encode()
        writer.write(f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        await writer.drain()

    async def _generate(self, writer, req, *, chat: bool):
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.in_flight += 1
        try:
            if chat:
                prompt = "".join(m.get("content", "") if isinstance(m.get("content"), str) else
                                 " ".join(p.get("text", "") for p in m.get("content", []))
                                 for m in req.get("messages", []))
            else:
                prompt = req.get("prompt", "")
                prompt = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
            n_in = self.count_tokens(prompt)
            n_out = int(req.get("max_tokens") or req.get("max_completion_tokens") or 16)
            stream = bool(req.get("stream"))
            rid = f"cmpl-{id(req)}"
            obj = "chat.completion.chunk" if chat else "text_completion"
            deadline = start + self.latency.prefill_ms_per_token * n_in / 1000.0
            if stream:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
            tokens = None
            if self.latency.batched:                     # the engine loop hands out this request's tokens
                tokens = asyncio.Queue()
                self._joining.append((n_in, n_out, tokens))
                self._wake.set()
            for k in range(n_out):
                if tokens is not None:
                    await tokens.get()
                else:
                    if k:
                        deadline += self.latency.tpot_ms(self.in_flight) / 1000.0
                    await asyncio.sleep(max(0.0, deadline - loop.time()))
                if stream:
                    choice = ({"index": 0, "delta": {"content": " token"} if k else {"role": "assistant", "content": " token"},
                               "finish_reason": None} if chat else {"index": 0, "text": " token", "finish_reason": None})
                    await self._chunk(writer, {"id": rid, "object": obj, "created": int(time.time()),
                                               "model": self.model, "choices": [choice]})
            usage = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
            if stream:
                done = ({"index": 0, "delta": {}, "finish_reason": "length"} if chat
                        else {"index": 0, "text": "", "finish_reason": "length"})
                await self._chunk(writer, {"id": rid, "object": obj, "created": int(time.time()), "model": self.model,
                                           "choices": [done], "usage": usage})
                writer.write(_chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")
                await writer.drain()
            else:
                text = " token" * n_out
                choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                          if chat else {"index": 0, "text": text, "finish_reason": "length"})
                await self._json(writer, {"id": rid, "object": "chat.completion" if chat else "text_completion",
                                          "created": int(time.time()), "model": self.model, "choices": [choice],
                                          "usage": usage})
            self.served += 1
        finally:
            self.in_flight -= 1

    async def _engine(self):
        """Batched mode: steps back to back while any request is in the batch; each ends on an absolute
        deadline (timer overshoot does not accumulate) and gives every sequence one token."""
        loop = asyncio.get_running_loop()
        running: list = []                                # [tokens left, queue]
        end = loop.time()
        while True:
            if not running and not self._joining:
                self._wake.clear()
                await self._wake.wait()
                end = loop.time()                         # idle: the next step starts now
            joining, self._joining = self._joining, []
            running += [[n_out, queue] for _, n_out, queue in joining if n_out > 0]
            lat = self.latency
            prefill = sum(n_in for n_in, _, _ in joining)
            end += (lat.a_ms + lat.b_ms * len(running) + lat.prefill_ms_per_token * prefill) / 1000.0
            await asyncio.sleep(max(0.0, end - loop.time()))
            self.steps += 1
            for seq in running:
                seq[0] -= 1
                seq[1].put_nowait(True)
            running = [seq for seq in running if seq[0] > 0]

    async def _chunk(self, writer, obj):
        writer.write(_chunked(b"data: " + json.dumps(obj).encode() + b"\n\n"))
        await writer.drain()


def _chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"
