// griffin_serve_load: a loopback-only load generator for `griffin serve`. One thread per stream, each
// sending its requests back to back (POST /v1/completions, stream: true); prints one line per run:
//   serve_load streams=N requests=R decode_tokens_per_s=… ttft_p50_ms=… ttft_p99_ms=… itl_p50_ms=… itl_p99_ms=…
// Bounded twice: by count (--requests-per-stream) and by wall time (--seconds, after which no new request
// starts and the client's read timeout ends any in flight), so it can never hammer a server forever.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;

static double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

static double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, std::size_t(p * double(v.size() - 1) + 0.5))];
}

static std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (c == '\n') o += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); o += b; }
    else o += c;
  }
  return o;
}

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", prompt = "In the beginning", label = "model";
  int port = 0, streams = 1, per_stream = 2, max_tokens = 32;
  double seconds = 60;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--host") host = v;
    else if (a == "--port") port = std::atoi(v.c_str());
    else if (a == "--streams") streams = std::atoi(v.c_str());
    else if (a == "--requests-per-stream") per_stream = std::atoi(v.c_str());
    else if (a == "--max-tokens") max_tokens = std::atoi(v.c_str());
    else if (a == "--prompt") prompt = v;
    else if (a == "--seconds") seconds = std::atof(v.c_str());
    else if (a == "--label") label = v;
    else { std::fprintf(stderr, "serve_load: unknown option %s\n", a.c_str()); return 2; }
  }
  // Loopback only: this is a benchmark of our own server, not a tool to load someone else's.
  if (host != "127.0.0.1" || port <= 0 || streams < 1 || streams > 256 || per_stream < 1 || seconds <= 0) {
    std::fprintf(stderr, "serve_load: needs --host 127.0.0.1, --port > 0, 1 <= --streams <= 256\n");
    return 2;
  }
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::mutex mu;
  std::vector<double> ttft, itl;
  std::atomic<long> tokens{0}, done{0}, failed{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int s = 0; s < streams; ++s)
    threads.emplace_back([&, s] {
      httplib::Client cli(host, port);
      cli.set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now()) + std::chrono::seconds(1));
      for (int r = 0; r < per_stream && Clock::now() < deadline; ++r) {
        const std::string body = "{\"prompt\":\"" + json_escape(prompt) + "\",\"max_tokens\":" + std::to_string(max_tokens) +
                                 ",\"seed\":" + std::to_string(s * 1000 + r) + ",\"temperature\":0.8,\"stream\":true}";
        std::vector<double> my_itl;
        double my_ttft = -1;
        long my_tokens = 0;
        std::string buf;
        const auto t0 = Clock::now();
        auto last = t0;
        // Each SSE chunk carrying text is one decode token (the server streams token by token).
        // Debian 12's cpp-httplib has no Post overload with a content receiver, so build the Request.
        httplib::Request req;
        req.method = "POST";
        req.path = "/v1/completions";
        req.body = body;
        req.set_header("Content-Type", "application/json");
        req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
          buf.append(data, len);
          for (std::size_t e; (e = buf.find("\n\n")) != std::string::npos; buf.erase(0, e + 2)) {
            const std::string ev = buf.substr(0, e);
            // Only chunks with text are tokens: the finish chunk has "text":"" and the usage chunk none.
            if (ev.rfind("data: ", 0) != 0 || ev.find("\"text\":\"\"") != std::string::npos || ev.find("\"text\":") == std::string::npos) continue;
            const auto now = Clock::now();
            if (my_ttft < 0) my_ttft = ms(now - t0);
            else my_itl.push_back(ms(now - last));
            last = now;
            ++my_tokens;
          }
          return Clock::now() < deadline;
        };
        auto res = cli.send(req);
        if (!res || res->status != 200 || my_ttft < 0) { ++failed; continue; }
        ++done;
        tokens += my_tokens;
        std::lock_guard lock(mu);
        ttft.push_back(my_ttft);
        itl.insert(itl.end(), my_itl.begin(), my_itl.end());
      }
    });
  for (auto& t : threads) t.join();
  const double wall = ms(Clock::now() - start) / 1000;
  std::printf("serve_load model=%s streams=%d requests=%ld failed=%ld max_tokens=%d tokens=%ld wall_s=%.2f "
              "decode_tokens_per_s=%.1f ttft_p50_ms=%.1f ttft_p99_ms=%.1f itl_p50_ms=%.1f itl_p99_ms=%.1f\n",
              label.c_str(), streams, done.load(), failed.load(), max_tokens, tokens.load(), wall, double(tokens) / wall,
              percentile(ttft, 0.5), percentile(ttft, 0.99), percentile(itl, 0.5), percentile(itl, 0.99));
  return failed == 0 ? 0 : 1;
}
