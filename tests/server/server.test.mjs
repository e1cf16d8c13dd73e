// griffin serve, tested as its users reach it: the official OpenAI client library (npm `openai`) and curl,
// against the real server on a free loopback port with the demo model. Every answer is compared with what
// `griffin generate` prints for the same prompt, options and seed. Each server is stopped by the test that
// started it; every test has a time limit (node --test --test-timeout, set in run.sh).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { promisify } from "node:util";
import net from "node:net";
import OpenAI from "openai";

const run = promisify(execFile);
const CLI = process.env.GRIFFIN_CLI;
if (!CLI) throw new Error("set GRIFFIN_CLI to the griffin executable");
const MODEL = "kjv-griffin";

// Starts `griffin serve --port 0 ...args` and resolves once it prints its address.
function startServer(args = []) {
  return new Promise((resolve, reject) => {
    const proc = spawn(CLI, ["serve", "--port", "0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    const timer = setTimeout(() => reject(new Error("server did not start: " + out + err)), 30000);
    proc.stderr.on("data", (d) => (err += d));
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) {
        clearTimeout(timer);
        const port = Number(m[1]);
        const exited = new Promise((r) => proc.on("exit", (code, signal) => r({ code, signal })));
        resolve({ proc, port, url: `http://127.0.0.1:${port}`, exited, stderr: () => err });
      }
    });
    proc.on("exit", (code) => reject(new Error(`server exited with ${code}: ${err}`)));
  });
}

async function stopServer(s) {
  s.proc.kill("SIGTERM");
  return s.exited;
}

function client(s, apiKey = "none") {
  return new OpenAI({ baseURL: s.url + "/v1", apiKey, maxRetries: 0, timeout: 60000 });
}

// What `griffin generate` gives: the continuation without the newline the CLI adds after it.
async function generate(prompt, { seed, maxTokens, temperature, stop = [] }) {
  const args = ["generate", "--no-echo", "--no-stats", "--seed", String(seed), "-n", String(maxTokens),
                "--temperature", String(temperature), "-p", prompt];
  for (const s of stop) args.push("--stop", s);
  const { stdout } = await run(CLI, args, { maxBuffer: 1 << 24 });
  return stdout.endsWith("\n") ? stdout.slice(0, -1) : stdout;
}

// curl: the status and body of one request.
async function curl(url, args = []) {
  const { stdout } = await run("curl", ["-s", "-o", "-", "-w", "\n%{http_code}", ...args, url], { maxBuffer: 1 << 24 });
  const cut = stdout.lastIndexOf("\n");
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

async function postJson(s, path, body, extra = []) {
  return curl(s.url + path, ["-H", "Content-Type: application/json", "--data-binary", typeof body === "string" ? body : JSON.stringify(body), ...extra]);
}

async function metric(s, name) {
  const { body } = await curl(s.url + "/metrics");
  const line = body.split("\n").find((l) => l.startsWith(name + " "));
  return line ? Number(line.split(" ")[1]) : NaN;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const CHAT_LINE = "In the beginning God created the heaven and the earth.";

test("completions and chat, whole and streamed, give griffin generate's text for the same seed", async () => {
  const s = await startServer();
  try {
    const api = client(s);
    const want = await generate("And God said", { seed: 7, maxTokens: 60, temperature: 0.8 });
    const whole = await api.completions.create({ model: MODEL, prompt: "And God said", max_tokens: 60, seed: 7, temperature: 0.8 });
    assert.equal(whole.choices[0].text, want);
    assert.equal(whole.choices[0].finish_reason, "length");
    assert.deepEqual(whole.usage, { prompt_tokens: 12, completion_tokens: 60, total_tokens: 72 });

    let streamed = "", usage = null, finish = null;
    const stream = await api.completions.create({ model: MODEL, prompt: "And God said", max_tokens: 60, seed: 7,
                                                  temperature: 0.8, stream: true });
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        streamed += c.text;
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.equal(streamed, want);
    assert.equal(finish, "length");
    assert.equal(usage.completion_tokens, 60);

    // Chat with the byte-level demo: the message is a line, the reply is the next line.
    const chatWant = await generate(CHAT_LINE + "\n", { seed: 3, maxTokens: 200, temperature: 1, stop: ["\n"] });
    const chat = await api.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: CHAT_LINE }], seed: 3 });
    assert.equal(chat.choices[0].message.role, "assistant");
    assert.equal(chat.choices[0].message.content, chatWant);
    assert.equal(chat.choices[0].finish_reason, "stop");
    assert.ok(chatWant.length > 0);
    let chatStreamed = "";
    const chatStream = await api.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: CHAT_LINE }],
                                                           seed: 3, stream: true });
    for await (const chunk of chatStream) for (const c of chunk.choices) chatStreamed += c.delta?.content ?? "";
    assert.equal(chatStreamed, chatWant);

    // n choices: choice i samples with seed + i.
    const three = await api.completions.create({ model: MODEL, prompt: "And Jesus answered", max_tokens: 30, seed: 40, n: 3 });
    assert.equal(three.choices.length, 3);
    for (let i = 0; i < 3; i++)
      assert.equal(three.choices[i].text, await generate("And Jesus answered", { seed: 40 + i, maxTokens: 30, temperature: 1 }));

    const models = await api.models.list();
    assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
  } finally {
    assert.equal((await stopServer(s)).code, 0);
  }
});

test("64 simultaneous requests with different seeds each get what the same request gets alone", async () => {
  const s = await startServer(["--parallel", "16", "--queue", "64", "--cache-mib", "0"]);
  try {
    const api = client(s);
    const prompts = ["And God said", "The LORD is my shepherd", "Blessed are the", "In the beginning"];
    const request = (i) => ({ model: MODEL, prompt: prompts[i % 4], max_tokens: 24 + (i % 5) * 8, seed: 100 + i, temperature: 0.9 });
    const together = await Promise.all(Array.from({ length: 64 }, (_, i) => api.completions.create(request(i))));
    const stepsTogether = await metric(s, "griffin_decode_steps_total");
    const tokensTogether = await metric(s, "griffin_generated_tokens_total");
    assert.ok(stepsTogether < tokensTogether / 4, `batched: ${stepsTogether} steps for ${tokensTogether} tokens`);
    for (let i = 0; i < 64; i++) {
      const alone = await api.completions.create(request(i));
      assert.equal(together[i].choices[0].text, alone.choices[0].text, `request ${i}`);
    }
    // And a few against the CLI.
    for (const i of [0, 17, 63])
      assert.equal(together[i].choices[0].text,
                   await generate(prompts[i % 4], { seed: 100 + i, maxTokens: 24 + (i % 5) * 8, temperature: 0.9 }));
  } finally {
    await stopServer(s);
  }
});

test("curl: health, models, an SSE stream that ends with [DONE], metrics", async () => {
  const s = await startServer();
  try {
    const health = await curl(s.url + "/health");
    assert.equal(health.status, 200);
    assert.equal(JSON.parse(health.body).status, "ok");
    const models = await curl(s.url + "/v1/models");
    assert.equal(JSON.parse(models.body).data[0].id, MODEL);
    const sse = await postJson(s, "/v1/completions", { prompt: "And God said", max_tokens: 20, seed: 5, stream: true }, ["-N"]);
    assert.equal(sse.status, 200);
    const events = sse.body.split("\n\n").filter((e) => e.length > 0);
    assert.equal(events.at(-1), "data: [DONE]");
    let text = "";
    for (const e of events.slice(0, -1)) {
      assert.ok(e.startsWith("data: "), e);
      const chunk = JSON.parse(e.slice(6));
      for (const c of chunk.choices) text += c.text;
    }
    assert.equal(text, await generate("And God said", { seed: 5, maxTokens: 20, temperature: 1 }));
    const usageEvent = JSON.parse(events.at(-2).slice(6));
    assert.equal(usageEvent.usage.completion_tokens, 20);
    const m = await curl(s.url + "/metrics");
    assert.match(m.body, /griffin_requests_total\{endpoint="\/v1\/completions",status="200"\} 1/);
    assert.match(m.body, /# TYPE griffin_batch_size gauge/);
    assert.ok((await metric(s, "griffin_completion_tokens_total")) >= 20);
  } finally {
    await stopServer(s);
  }
});

test("bad input gets an OpenAI error object with its status, and the server keeps serving", async () => {
  const s = await startServer(["--max-prompt-tokens", "64", "--max-tokens-limit", "1000", "--max-request-tokens", "500",
                               "--max-body-bytes", "4096"]);
  try {
    const cases = [
      ["malformed JSON", '{"prompt": "x", ', 400, null, null],
      ["not an object", "[1, 2]", 400, null, null],
      ["wrong type", { prompt: "x", max_tokens: "ten" }, 400, "max_tokens", null],
      ["temperature out of range", { prompt: "x", temperature: 7 }, 400, "temperature", null],
      ["unknown field", { prompt: "x", frobnicate: true }, 400, "frobnicate", null],
      ["duplicate field", '{"prompt": "x", "prompt": "y"}', 400, null, null],
      ["no prompt", { max_tokens: 3 }, 400, "prompt", null],
      ["prompt over the limit", { prompt: "x".repeat(100) }, 400, "prompt", "context_length_exceeded"],
      ["max_tokens absurdly large", { prompt: "x", max_tokens: 1e12 }, 400, "max_tokens", null],
      ["token budget exhausted", { prompt: "x", max_tokens: 100, n: 6 }, 400, "max_tokens", "token_budget_exceeded"],
      ["token id out of range", { prompt: [1, 2, 99999] }, 400, "prompt", null],
      ["unknown model", { model: "gpt-4", prompt: "x" }, 404, "model", "model_not_found"],
      ["unsupported option", { prompt: "x", logprobs: 5 }, 400, "logprobs", null],
    ];
    for (const [what, body, status, param, code] of cases) {
      const r = await postJson(s, "/v1/completions", body);
      assert.equal(r.status, status, what + ": " + r.body);
      const e = JSON.parse(r.body).error;
      assert.equal(typeof e.message, "string", what);
      assert.ok(e.message.length > 0, what);
      assert.equal(e.param, param, what + ": " + r.body);
      assert.equal(e.code, code, what + ": " + r.body);
    }
    const badRole = await postJson(s, "/v1/chat/completions", { messages: [{ role: "robot", content: "hi" }] });
    assert.equal(badRole.status, 400);
    assert.equal(JSON.parse(badRole.body).error.param, "messages[0].role");
    const big = await postJson(s, "/v1/completions", { prompt: "x".repeat(10000) });
    assert.equal(big.status, 413);
    assert.match(JSON.parse(big.body).error.message, /larger than the limit of 4096 bytes/);
    const nowhere = await curl(s.url + "/v1/nothing");
    assert.equal(nowhere.status, 404);
    assert.equal(JSON.parse(nowhere.body).error.type, "invalid_request_error");
    // Still serving, and still right.
    const ok = await postJson(s, "/v1/completions", { prompt: "And God said", max_tokens: 10, seed: 1 });
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse(ok.body).choices[0].text, await generate("And God said", { seed: 1, maxTokens: 10, temperature: 1 }));
  } finally {
    await stopServer(s);
  }
});

test("too many requests get 429; a client that disconnects mid-stream frees its slot and disturbs no one", async () => {
  const s = await startServer(["--parallel", "2", "--queue", "1", "--cache-mib", "0"]);
  try {
    const api = client(s);
    // Two long streams fill the slots and one more waits in the queue: the next is refused.
    const controllers = [new AbortController(), new AbortController()];
    let cut = false;
    const firstChunk = [];
    const read = async (i) => {
      const ctl = controllers[i];
      const stream = await api.completions.create({ model: MODEL, prompt: "And God said", max_tokens: 4096, seed: i,
                                                    stream: true }, { signal: ctl.signal });
      let chunks = 0;
      try {
        for await (const chunk of stream) {
          if (++chunks === 1) firstChunk[i] = true;
          if (cut) ctl.abort();  // goes away mid-stream
        }
      } catch (e) {
        if (!ctl.signal.aborted) throw e;
      }
      return chunks;
    };
    // One after the other, so each is in its slot (not in the queue) before the next arrives.
    const readers = [read(0)];
    while (!firstChunk[0]) await sleep(5);
    readers.push(read(1));
    while (!firstChunk[1]) await sleep(5);
    const queued = api.completions.create({ model: MODEL, prompt: "The LORD is my shepherd", max_tokens: 40, seed: 9 });
    for (let t = 0; t < 200 && (await metric(s, "griffin_queue_length")) !== 1; t++) await sleep(5);
    const r = await postJson(s, "/v1/completions", { prompt: "x", max_tokens: 5 });
    assert.equal(r.status, 429, r.body);
    assert.equal(JSON.parse(r.body).error.code, "rate_limit_exceeded");
    cut = true;
    await Promise.all(readers);
    const q = await queued;
    assert.equal(q.choices[0].text, await generate("The LORD is my shepherd", { seed: 9, maxTokens: 40, temperature: 1 }));
    // The cut streams' slots are free soon: the batch empties although they asked for 4096 tokens each.
    for (let t = 0; t < 100 && (await metric(s, "griffin_batch_size")) !== 0; t++) await sleep(50);
    assert.equal(await metric(s, "griffin_batch_size"), 0);
    assert.ok((await metric(s, "griffin_client_disconnects_total")) >= 2);
    assert.ok((await metric(s, "griffin_generated_tokens_total")) < 2 * 4096);
  } finally {
    await stopServer(s);
  }
});

test("a slow client is dropped after --timeout and others are served meanwhile", async () => {
  const s = await startServer(["--timeout", "1"]);
  try {
    const sock = net.connect(s.port, "127.0.0.1");
    await new Promise((r) => sock.on("connect", r));
    sock.write("POST /v1/completions HTTP/1.1\r\nHost: x\r\n");  // and never the rest
    let answer = "";
    sock.on("data", (d) => (answer += d));  // read what comes, so the end of the stream is seen
    const closed = new Promise((r) => sock.on("close", r));
    const ok = await postJson(s, "/v1/completions", { prompt: "And God said", max_tokens: 8, seed: 2 });
    assert.equal(ok.status, 200);
    const t0 = Date.now();
    await closed;
    assert.ok(Date.now() - t0 < 10000);
    assert.match(answer, /^HTTP\/1\.1 400/);  // told why, then dropped
  } finally {
    await stopServer(s);
  }
});

test("--api-key: requests without the key get 401, the OpenAI client with it is served", async () => {
  const s = await startServer(["--api-key", "sesame"]);
  try {
    const none = await postJson(s, "/v1/completions", { prompt: "x" });
    assert.equal(none.status, 401);
    assert.equal(JSON.parse(none.body).error.code, "invalid_api_key");
    const wrong = await postJson(s, "/v1/completions", { prompt: "x" }, ["-H", "Authorization: Bearer nope"]);
    assert.equal(wrong.status, 401);
    const r = await client(s, "sesame").completions.create({ model: MODEL, prompt: "And God said", max_tokens: 5, seed: 1 });
    assert.equal(r.choices[0].text, await generate("And God said", { seed: 1, maxTokens: 5, temperature: 1 }));
    assert.equal((await curl(s.url + "/health")).status, 200);  // health needs no key
  } finally {
    await stopServer(s);
  }
});

test("SIGTERM: the request in flight finishes, new ones are refused, the server exits 0", async () => {
  const s = await startServer(["--parallel", "1"]);
  const api = client(s);
  const inflight = api.completions.create({ model: MODEL, prompt: "And God said", max_tokens: 4096, seed: 11 });
  for (let t = 0; t < 200 && (await metric(s, "griffin_batch_size")) !== 1; t++) await sleep(10);
  s.proc.kill("SIGTERM");
  const r = await inflight;
  assert.equal(r.choices[0].finish_reason, "length");
  assert.equal(r.usage.completion_tokens, 4096);
  assert.deepEqual(await s.exited, { code: 0, signal: null });
  await assert.rejects(api.completions.create({ model: MODEL, prompt: "x", max_tokens: 1 }));
});
