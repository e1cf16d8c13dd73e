// Command-line parsing for the griffin tool: each subcommand lists its options (with help text); the
// parser accepts --name VALUE, --name=VALUE, short aliases and positionals, and every mistake is a
// UsageError whose message says what was wrong.
#pragma once

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace griffin::cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct OptionSpec {
  std::string name;        // "--max-tokens"
  std::string alias;       // "-n", or empty
  std::string value_name;  // "N"; empty for a flag
  std::string help;
  bool repeatable = false;
};

struct CommandHelp {
  std::string name;      // "generate"
  std::string usage;     // "[options] [PROMPT...]"
  std::string summary;   // one paragraph
  std::vector<OptionSpec> options;
  std::string examples;  // shown after the options
};

inline void print_help(const CommandHelp& c, std::FILE* out = stdout) {
  std::fprintf(out, "usage: griffin %s %s\n\n%s\n\noptions:\n", c.name.c_str(), c.usage.c_str(), c.summary.c_str());
  for (const auto& o : c.options) {
    std::string left = "  " + (o.alias.empty() ? std::string("    ") : o.alias + ", ") + o.name;
    if (!o.value_name.empty()) left += " " + o.value_name;
    if (left.size() < 28) left.resize(28, ' ');
    else left += "\n" + std::string(28, ' ');
    std::fprintf(out, "%s%s\n", left.c_str(), o.help.c_str());
  }
  if (!c.examples.empty()) std::fprintf(out, "\nexamples:\n%s", c.examples.c_str());
}

class Args {
 public:
  Args(const CommandHelp& help, const std::vector<std::string>& argv) : help_(&help) {
    for (std::size_t i = 0; i < argv.size(); ++i) {
      std::string a = argv[i];
      if (a == "--") {
        positional_.insert(positional_.end(), argv.begin() + static_cast<std::ptrdiff_t>(i) + 1, argv.end());
        break;
      }
      if (a.size() < 2 || a[0] != '-' || (a[1] != '-' && std::isdigit(static_cast<unsigned char>(a[1])))) {
        positional_.push_back(a);
        continue;
      }
      std::optional<std::string> inline_value;
      if (const auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
        inline_value = a.substr(eq + 1);
        a.resize(eq);
      }
      const OptionSpec* spec = find(a);
      if (!spec) throw UsageError("unknown option " + a);
      if (spec->value_name.empty()) {
        if (inline_value) throw UsageError(spec->name + " takes no value");
        values_[spec->name].push_back("1");
        continue;
      }
      std::string value;
      if (inline_value) value = *inline_value;
      else if (i + 1 < argv.size()) value = argv[++i];
      else throw UsageError(spec->name + " needs a value (" + spec->value_name + ")");
      auto& v = values_[spec->name];
      if (!v.empty() && !spec->repeatable) throw UsageError(spec->name + " given twice");
      v.push_back(value);
    }
  }

  bool has(const std::string& name) const { return values_.count(checked(name)) != 0; }
  const std::vector<std::string>& all(const std::string& name) const {
    static const std::vector<std::string> none;
    const auto it = values_.find(checked(name));
    return it == values_.end() ? none : it->second;
  }
  std::string get(const std::string& name, const std::string& fallback = {}) const {
    return has(name) ? all(name).back() : fallback;
  }
  std::uint64_t get_uint(const std::string& name, std::uint64_t fallback) const {
    if (!has(name)) return fallback;
    const std::string v = get(name);
    try {
      std::size_t used = 0;
      if (!v.empty() && v[0] == '-') throw std::invalid_argument("negative");
      const unsigned long long n = std::stoull(v, &used);
      if (used == v.size()) return n;
    } catch (const std::exception&) {
    }
    throw UsageError(name + " expects a non-negative integer, got \"" + v + "\"");
  }
  double get_double(const std::string& name, double fallback) const {
    if (!has(name)) return fallback;
    const std::string v = get(name);
    try {
      std::size_t used = 0;
      const double d = std::stod(v, &used);
      if (used == v.size()) return d;
    } catch (const std::exception&) {
    }
    throw UsageError(name + " expects a number, got \"" + v + "\"");
  }
  const std::vector<std::string>& positional() const { return positional_; }
  const CommandHelp& help() const { return *help_; }

 private:
  const OptionSpec* find(const std::string& a) const {
    for (const auto& o : help_->options)
      if (o.name == a || (!o.alias.empty() && o.alias == a)) return &o;
    return nullptr;
  }
  const std::string& checked(const std::string& name) const {
    if (!find(name)) throw std::logic_error("griffin cli: option " + name + " is not declared by " + help_->name);
    return name;
  }
  const CommandHelp* help_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

}  // namespace griffin::cli
