#include "sim/content.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static const char *pick(lf_random *random, const char *const *list, size_t count)
{
    return list[lf_random_below(random, count)];
}
#define PICK(random, list) pick(random, list, COUNT(list))

/* ---------------------------------------------------------------- */
/* Names                                                             */

static const char *const directory_bases[] = {
    "usr", "etc", "var", "lib", "src", "bin", "opt", "srv", "home", "tmp", "logs", "data",
    "config", "docs", "tests", "scripts", "build", "cache", "backup", "assets", "include",
    "share", "www", "app", "pkg", "vendor", "tools", "run", "spool", "local", "conf.d",
    "releases", "modules", "static", "templates", "reports", "archive", "jobs",
};
static const char *const directory_suffixes[] = {"_old", "_new", "_v2", "_tmp", "_bak", "-dev"};
static const char *const file_prefixes[] = {
    "log", "config", "data", "main", "util", "server", "client", "test", "notes", "script",
    "app", "index", "handler", "parser", "temp", "backup", "report", "settings", "worker", "db",
    "api", "auth", "cache", "queue", "module", "setup", "deploy", "build", "cron", "session",
};
static const struct {
    const char *extension;
    unsigned weight;
} extensions[] = {
    {".txt", 10}, {".log", 10}, {".conf", 6}, {".json", 6}, {".yaml", 5}, {".py", 8},
    {".rs", 6},   {".c", 6},    {".h", 3},    {".sh", 6},   {".md", 5},   {".toml", 3},
    {".ini", 2},  {".csv", 3},  {".cfg", 2},  {"", 2},
};
static const char *const special_file_names[] = {
    "Makefile", "README.md", "LICENSE", ".gitignore", ".env", "Cargo.toml", "requirements.txt",
    "nginx.conf", "crontab", "hosts", "CHANGELOG.md", "docker-compose.yml", "notes.txt",
    "café.txt", "résumé.md", "my notes.txt", "über.conf",
};
static const char *const symlink_names[] = {
    "current", "latest", "default", "stable", "link", "active", "previous", "config", "log",
};

/* Words that are in no list: a model trained on listed names only learns
 * to look names up, and then fails on the first file a user names
 * (docs/DECISIONS.md, "Names and bodies outside the lists"). */
static const char *const consonants[] = {"b", "c", "d", "f", "g", "h", "k", "l", "m", "n",
                                         "p", "r", "s", "t", "v", "w", "z", "st", "tr", "ch"};
static const char *const vowels[] = {"a", "e", "i", "o", "u", "y", "ou", "ea"};
static const char *const listed_words[] = {
    "hello", "world", "test", "file", "dir", "notes", "photo", "music", "draft", "todo",
    "old", "new", "final", "copy", "misc", "stuff", "work", "home", "project", "report",
    "invoice", "letter", "budget", "plan", "summary", "demo", "sample", "example", "foo",
    "bar", "baz", "alpha", "beta", "readme", "index", "main", "data", "output", "input",
};

/* Appends one word to out (at most 12 bytes): a common word, a made-up
 * pronounceable one, or random letters, now and then capitalised. */
static void free_word(lf_random *random, char *out, size_t size)
{
    char word[16] = "";
    uint64_t shape = lf_random_below(random, 10);
    if (shape < 4) {
        snprintf(word, sizeof word, "%s", PICK(random, listed_words));
    } else if (shape < 7) {
        int syllables = (int)lf_random_range(random, 1, 3);
        for (int i = 0; i < syllables; i++) {
            const char *consonant = PICK(random, consonants);
            const char *vowel = PICK(random, vowels);
            size_t used = strlen(word);
            snprintf(word + used, sizeof word - used, "%s%s", consonant, vowel);
        }
    } else {
        int letters = (int)lf_random_range(random, 1, 8);
        for (int i = 0; i < letters; i++)
            word[i] = (char)('a' + lf_random_below(random, 26));
        word[letters] = '\0';
    }
    if (lf_random_chance(random, 1, 7))
        word[0] = (char)toupper((unsigned char)word[0]);
    size_t used = strlen(out);
    snprintf(out + used, size - used, "%s", word);
}

/* A name stem outside the lists: a word, two run together ("testdir"), or
 * joined by '_' or '-', sometimes with a number. */
static void free_stem(lf_random *random, char name[LF_SIM_CONTENT_NAME_MAX])
{
    name[0] = '\0';
    free_word(random, name, LF_SIM_CONTENT_NAME_MAX);
    uint64_t shape = lf_random_below(random, 10);
    if (shape < 2) {
        free_word(random, name, LF_SIM_CONTENT_NAME_MAX);
    } else if (shape < 4) {
        size_t used = strlen(name);
        snprintf(name + used, LF_SIM_CONTENT_NAME_MAX - used, "%s",
                 lf_random_chance(random, 1, 2) ? "_" : "-");
        free_word(random, name, LF_SIM_CONTENT_NAME_MAX);
    }
    if (lf_random_chance(random, 1, 6)) {
        size_t used = strlen(name);
        snprintf(name + used, LF_SIM_CONTENT_NAME_MAX - used, "%d",
                 (int)lf_random_range(random, 1, 2024));
    }
}

static const char *random_extension(lf_random *random)
{
    unsigned total = 0;
    for (size_t i = 0; i < COUNT(extensions); i++)
        total += extensions[i].weight;
    uint64_t draw = lf_random_below(random, total);
    for (size_t i = 0;; i++) {
        if (draw < extensions[i].weight)
            return extensions[i].extension;
        draw -= extensions[i].weight;
    }
}

void lf_sim_content_directory_name(lf_random *random, char name[LF_SIM_CONTENT_NAME_MAX])
{
    if (lf_random_chance(random, 1, 2)) {
        free_stem(random, name);
        return;
    }
    const char *base = PICK(random, directory_bases);
    uint64_t shape = lf_random_below(random, 10);
    if (shape < 4)
        snprintf(name, LF_SIM_CONTENT_NAME_MAX, "%s%d", base, (int)lf_random_range(random, 1, 99));
    else if (shape < 5)
        snprintf(name, LF_SIM_CONTENT_NAME_MAX, "%s%s", base, PICK(random, directory_suffixes));
    else
        snprintf(name, LF_SIM_CONTENT_NAME_MAX, "%s", base);
}

void lf_sim_content_file_name(lf_random *random, char name[LF_SIM_CONTENT_NAME_MAX])
{
    if (lf_random_chance(random, 1, 2)) {
        free_stem(random, name);
        size_t used = strlen(name);
        snprintf(name + used, LF_SIM_CONTENT_NAME_MAX - used, "%s", random_extension(random));
        return;
    }
    uint64_t shape = lf_random_below(random, 20);
    if (shape < 3) {
        snprintf(name, LF_SIM_CONTENT_NAME_MAX, "%s", PICK(random, special_file_names));
        return;
    }
    const char *prefix = PICK(random, file_prefixes);
    const char *extension = random_extension(random);
    if (shape < 12) /* the seed's shape: log767.rs */
        snprintf(name, LF_SIM_CONTENT_NAME_MAX, "%s%d%s", prefix,
                 (int)lf_random_range(random, 1, 999), extension);
    else if (shape < 16)
        snprintf(name, LF_SIM_CONTENT_NAME_MAX, "%s_%s%s", prefix, PICK(random, file_prefixes),
                 extension);
    else
        snprintf(name, LF_SIM_CONTENT_NAME_MAX, "%s%s", prefix, extension);
}

void lf_sim_content_symlink_name(lf_random *random, char name[LF_SIM_CONTENT_NAME_MAX])
{
    if (lf_random_chance(random, 1, 3)) {
        free_stem(random, name);
        return;
    }
    if (lf_random_chance(random, 1, 2)) {
        snprintf(name, LF_SIM_CONTENT_NAME_MAX, "%s", PICK(random, symlink_names));
        return;
    }
    const char *prefix = PICK(random, file_prefixes);
    int number = (int)lf_random_range(random, 1, 99);
    snprintf(name, LF_SIM_CONTENT_NAME_MAX, "link_to_%s%d", prefix, number);
}

/* ---------------------------------------------------------------- */
/* Templates                                                         */

/* Bodies are assembled from templates: "{{category}}" is replaced by a word
 * of that category.  A category with a digit ("{{noun1}}") is bound: every
 * use in one template gives the same word, so a function is called by the
 * name it was defined with.  An upper-case initial capitalises the word,
 * an all-upper-case category upper-cases it ("{{NOUN1}}"). */

static const char *const nouns[] = {
    "server", "client", "cache", "session", "buffer", "queue", "worker", "request", "record",
    "packet", "index", "table", "stream", "job", "event", "metric", "config", "user", "token",
    "socket", "channel", "handler", "entry", "block", "page", "node", "route", "message",
    "account", "backup",
};
static const char *const verbs[] = {
    "start", "stop", "load", "save", "parse", "flush", "open", "close", "update", "fetch",
    "send", "read", "write", "check", "reset", "init", "sync", "merge", "retry", "drain",
    "scan", "build", "render", "commit",
};
static const char *const adjectives[] = {
    "fast", "stale", "pending", "active", "idle", "local", "remote", "cached", "primary",
    "secondary", "temporary", "default", "legacy", "shared", "private",
};
static const char *const variables[] = {
    "count", "size", "offset", "limit", "total", "index", "result", "value", "state", "len",
    "pos", "flags", "timeout", "retries", "depth",
};
static const char *const fields[] = {
    "id", "name", "size", "flags", "count", "owner", "length", "status", "kind", "priority",
};
static const char *const hosts[] = {
    "db01", "web02", "cache-1", "api.internal", "localhost", "10.0.3.17", "backup.lan",
    "mail.example.org",
};
static const char *const places[] = {
    "Zürich", "São Paulo", "Kraków", "Malmö", "the data centre", "the lab", "Reykjavík",
};
static const char *const levels[] = {"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR", "NOTICE"};
static const char *const python_modules[] = {
    "os", "sys", "json", "time", "logging", "argparse", "pathlib", "re", "subprocess",
    "collections",
};
static const char *const rust_paths[] = {
    "std::fs", "std::io", "std::collections::HashMap", "std::path::Path", "std::time::Duration",
    "std::sync::Arc",
};
static const char *const c_headers[] = {
    "stdio.h", "stdlib.h", "string.h", "errno.h", "unistd.h", "stdint.h", "fcntl.h",
};
static const char *const paths[] = {
    "/var/log", "/srv/data", "/tmp/spool", "/etc/app", "/opt/tools", "/home/deploy",
};
static const char *const booleans[] = {"true", "false"};
static const char *const sentences[] = {
    "The {{adj}} {{noun}} {{verb}}s the {{noun}} every {{small}} minutes.",
    "Each {{noun}} keeps its {{field}} until the {{noun}} is {{adj}}.",
    "We {{verb}} the {{noun}} on {{host}} before the {{adj}} {{noun}} starts.",
    "Measurements from {{place}} show {{num}} µs per {{noun}} — well within budget.",
    "A {{adj}} {{noun}} may {{verb}} at most {{big}} {{noun}}s per second.",
    "Temperature in the rack stayed at {{small}}°C ± 1 during the {{noun}} test.",
    "Remember to {{verb}} the {{noun}} → it is not {{adj}} by default.",
    "The naïve {{noun}} {{verb}}s everything twice; the new one does it once.",
};

typedef struct binding {
    char key[16];
    char value[32];
} binding;

typedef struct expansion {
    lf_random *random;
    binding bindings[16];
    size_t binding_count;
    char number[32]; /* scratch for generated numbers */
} expansion;

static int expand(expansion *state, const char *template, lf_buffer *out, int depth);

/* A word for a category name (without digits), or NULL if unknown. */
static const char *category_word(expansion *state, const char *category)
{
    lf_random *random = state->random;
    static const struct {
        const char *name;
        const char *const *words;
        size_t count;
    } lists[] = {
        {"noun", nouns, COUNT(nouns)},         {"verb", verbs, COUNT(verbs)},
        {"adj", adjectives, COUNT(adjectives)}, {"var", variables, COUNT(variables)},
        {"field", fields, COUNT(fields)},      {"host", hosts, COUNT(hosts)},
        {"place", places, COUNT(places)},      {"level", levels, COUNT(levels)},
        {"module", python_modules, COUNT(python_modules)},
        {"crate", rust_paths, COUNT(rust_paths)},
        {"header", c_headers, COUNT(c_headers)}, {"path", paths, COUNT(paths)},
        {"bool", booleans, COUNT(booleans)},
    };
    for (size_t i = 0; i < COUNT(lists); i++)
        if (strcmp(category, lists[i].name) == 0)
            return pick(random, lists[i].words, lists[i].count);
    static const struct {
        const char *name;
        int64_t low, high;
    } ranges[] = {
        {"small", 2, 9}, {"num", 1, 100}, {"big", 100, 65535}, {"port", 1024, 65535},
        {"pid", 100, 32767},
    };
    for (size_t i = 0; i < COUNT(ranges); i++)
        if (strcmp(category, ranges[i].name) == 0) {
            snprintf(state->number, sizeof state->number, "%lld",
                     (long long)lf_random_range(random, ranges[i].low, ranges[i].high));
            return state->number;
        }
    /* One draw per statement: the order in which a call's arguments are
     * evaluated is unspecified, and compilers differ. */
    if (strcmp(category, "time") == 0) {
        int hour = (int)lf_random_below(random, 24);
        int minute = (int)lf_random_below(random, 60);
        int second = (int)lf_random_below(random, 60);
        snprintf(state->number, sizeof state->number, "%02d:%02d:%02d", hour, minute, second);
        return state->number;
    }
    if (strcmp(category, "date") == 0) {
        int month = (int)lf_random_range(random, 1, 12);
        int day = (int)lf_random_range(random, 1, 28);
        snprintf(state->number, sizeof state->number, "2024-%02d-%02d", month, day);
        return state->number;
    }
    if (strcmp(category, "word") == 0) {
        state->number[0] = '\0';
        free_word(random, state->number, sizeof state->number);
        return state->number;
    }
    if (strcmp(category, "hex") == 0) {
        snprintf(state->number, sizeof state->number, "%08llx",
                 (unsigned long long)(lf_random_next(random) >> 32));
        return state->number;
    }
    return NULL;
}

/* The word for one "{{token}}": bound, case-adjusted, appended to out. */
static int expand_token(expansion *state, const char *token, size_t length, lf_buffer *out,
                        int depth)
{
    char key[16], category[16];
    if (length == 0 || length >= sizeof key)
        return -EINVAL;
    bool capital = isupper((unsigned char)token[0]), all_capitals = capital;
    size_t category_length = 0;
    for (size_t i = 0; i < length; i++) {
        key[i] = (char)tolower((unsigned char)token[i]);
        if (islower((unsigned char)token[i]))
            all_capitals = false;
        if (!isdigit((unsigned char)token[i]))
            category[category_length++] = key[i];
    }
    key[length] = '\0';
    category[category_length] = '\0';
    if (strcmp(category, "sentence") == 0) /* a template itself, expanded in place */
        return depth == 0 ? expand(state, PICK(state->random, sentences), out, depth + 1) : -EINVAL;
    bool bound = category_length != length;
    const char *word = NULL;
    for (size_t i = 0; bound && i < state->binding_count && !word; i++)
        if (strcmp(state->bindings[i].key, key) == 0)
            word = state->bindings[i].value;
    if (!word) {
        if (!(word = category_word(state, category)))
            return -EINVAL;
        if (bound && state->binding_count < COUNT(state->bindings)) {
            binding *slot = &state->bindings[state->binding_count++];
            snprintf(slot->key, sizeof slot->key, "%s", key);
            snprintf(slot->value, sizeof slot->value, "%s", word);
        }
    }
    size_t start = out->length;
    if (lf_buffer_append_string(out, word) < 0)
        return -ENOMEM;
    for (size_t i = start; i < out->length; i++) {
        if (all_capitals && length > 1)
            out->data[i] = (uint8_t)toupper(out->data[i]);
        else if (capital && i == start)
            out->data[i] = (uint8_t)toupper(out->data[i]);
    }
    return 0;
}

static int expand(expansion *state, const char *template, lf_buffer *out, int depth)
{
    const char *text = template;
    for (;;) {
        const char *open = strstr(text, "{{");
        if (!open)
            return lf_buffer_append_string(out, text);
        const char *close = strstr(open + 2, "}}");
        if (!close)
            return -EINVAL;
        int status = lf_buffer_append(out, text, (size_t)(open - text));
        if (status == 0)
            status = expand_token(state, open + 2, (size_t)(close - open - 2), out, depth);
        if (status < 0)
            return status;
        text = close + 2;
    }
}

/* ---------------------------------------------------------------- */
/* Styles                                                            */

typedef struct style {
    const char *const *extensions; /* NULL-terminated; the first style matching wins */
    const char *header;            /* written first if it fits */
    const char *const *blocks;     /* NULL-terminated; drawn at random */
    const char *footer;            /* closes the body (JSON's brace), or NULL */
} style;

/* Each template is written one line of its text per source line. */
static const char *const c_extensions[] = {".c", ".h", NULL};
static const char *const c_blocks[] = {
    "/* {{Verb1}} every {{noun1}} in the table; stops at the first {{adj}} one. */\n"
    "static int {{verb1}}_{{noun1}}s(struct {{noun1}} *{{var1}}, size_t {{var2}})\n"
    "{\n"
    "    for (size_t i = 0; i < {{var2}}; i++) {\n"
    "        if ({{var1}}[i].{{field1}} > {{num}})\n"
    "            return -1;\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "\n",
    "struct {{noun1}} {\n"
    "    int {{field1}};\n"
    "    size_t {{var1}};\n"
    "    struct {{noun1}} *next;\n"
    "};\n"
    "\n",
    "#define {{NOUN1}}_MAX {{big}}\n"
    "#define {{NOUN1}}_TIMEOUT_MS {{num}}\n"
    "\n",
    "int main(int argc, char **argv)\n"
    "{\n"
    "    if (argc < 2) {\n"
    "        fprintf(stderr, \"usage: %s {{noun1}}\\n\", argv[0]);\n"
    "        return 1;\n"
    "    }\n"
    "    printf(\"{{verb1}}: %d\\n\", atoi(argv[1]) * {{small}});\n"
    "    return 0;\n"
    "}\n"
    "\n",
    "static const char *const {{noun1}}_names[] = {\"{{noun}}\", \"{{noun}}\", \"{{noun}}\"};\n"
    "\n",
    "static size_t {{var1}}_of(const char *{{noun1}})\n"
    "{\n"
    "    size_t {{var1}} = 0;\n"
    "    while ({{noun1}}[{{var1}}] != '\\0' && {{noun1}}[{{var1}}] != '/')\n"
    "        {{var1}}++;\n"
    "    return {{var1}};\n"
    "}\n"
    "\n",
    NULL,
};
static const char *const rust_extensions[] = {".rs", NULL};
static const char *const rust_blocks[] = {
    "fn {{verb1}}_{{noun1}}({{var1}}: i32) -> Result<i32, String> {\n"
    "    if {{var1}} < 0 {\n"
    "        return Err(format!(\"invalid {{noun1}}: {}\", {{var1}}));\n"
    "    }\n"
    "    Ok({{var1}} * {{small}})\n"
    "}\n"
    "\n",
    "#[derive(Debug, Clone)]\n"
    "pub struct {{Noun1}} {\n"
    "    pub {{field1}}: u32,\n"
    "    pub {{field2}}: String,\n"
    "}\n"
    "\n",
    "fn main() {\n"
    "    match {{verb1}}_{{noun1}}({{num}}) {\n"
    "        Ok(result) => println!(\"Result: {}\", result),\n"
    "        Err(e) => eprintln!(\"Error: {}\", e),\n"
    "    }\n"
    "}\n"
    "\n",
    "impl {{Noun1}} {\n"
    "    pub fn {{verb1}}(&mut self) -> usize {\n"
    "        self.{{field1}} += {{small}};\n"
    "        self.{{field1}} as usize\n"
    "    }\n"
    "}\n"
    "\n",
    "const {{NOUN1}}_LIMIT: usize = {{big}};\n"
    "\n",
    NULL,
};
static const char *const python_extensions[] = {".py", NULL};
static const char *const python_blocks[] = {
    "def {{verb1}}_{{noun1}}({{var1}}):\n"
    "    \"\"\"{{Verb1}} the {{noun1}}.\"\"\"\n"
    "    if {{var1}} is None:\n"
    "        raise ValueError(\"{{var1}} cannot be None\")\n"
    "    return {{var1}} * {{small}}\n"
    "\n"
    "\n",
    "class {{Noun1}}:\n"
    "    def __init__(self, {{field1}}={{num}}):\n"
    "        self.{{field1}} = {{field1}}\n"
    "\n"
    "    def {{verb1}}(self):\n"
    "        return self.{{field1}} + {{small}}\n"
    "\n"
    "\n",
    "if __name__ == \"__main__\":\n"
    "    print({{verb}}_{{noun}}({{num}}))\n",
    "{{NOUN1}}_LIMIT = {{big}}\n"
    "{{NOUN1}}_HOST = \"{{host}}\"\n"
    "\n",
    "for {{var1}} in range({{num}}):\n"
    "    logging.info(\"{{verb}} %d\", {{var1}})\n"
    "\n",
    NULL,
};
static const char *const shell_extensions[] = {".sh", NULL};
static const char *const shell_blocks[] = {
    "{{VAR1}}=\"{{path}}/{{noun}}\"\n"
    "mkdir -p \"${{VAR1}}\"\n"
    "\n",
    "for f in {{path}}/*.log; do\n"
    "    gzip -9 \"$f\"\n"
    "done\n"
    "\n",
    "if [ -z \"${1:-}\" ]; then\n"
    "    echo \"usage: $0 {{noun}}\" >&2\n"
    "    exit 1\n"
    "fi\n"
    "\n",
    "{{verb1}}_{{noun1}}() {\n"
    "    echo \"{{verb1}} {{noun1}} on {{host}}\"\n"
    "    sleep {{small}}\n"
    "}\n"
    "\n",
    "systemctl restart {{noun}}.service\n",
    "rsync -a --delete {{path}}/ backup@{{host}}:/srv/backup/{{noun}}/\n",
    NULL,
};
static const char *const ini_extensions[] = {
    ".conf", ".ini", ".cfg", ".env", ".gitignore", "crontab", "hosts", NULL,
};
static const char *const ini_blocks[] = {
    "[{{noun1}}]\n"
    "{{field}} = {{num}}\n"
    "host = {{host}}\n"
    "port = {{port}}\n"
    "enabled = {{bool}}\n"
    "\n",
    "# {{sentence}}\n"
    "{{noun}}_{{var}} = {{num}}\n",
    "{{NOUN}}_{{VAR}}={{big}}\n",
    "listen {{port}};\n"
    "server_name {{host}};\n",
    NULL,
};
static const char *const yaml_extensions[] = {".yaml", ".yml", NULL};
static const char *const yaml_blocks[] = {
    "{{noun1}}:\n"
    "  {{field}}: {{num}}\n"
    "  host: {{host}}\n"
    "  enabled: {{bool}}\n",
    "# {{sentence}}\n",
    "{{noun1}}s:\n"
    "  - name: {{noun}}-{{small}}\n"
    "    {{var}}: {{num}}\n"
    "  - name: {{noun}}-{{small}}\n"
    "    {{var}}: {{num}}\n",
    NULL,
};
static const char *const json_extensions[] = {".json", NULL};
static const char *const json_blocks[] = {
    "  \"{{noun}}_{{field}}\": {{num}},\n",
    "  \"{{noun}}\": \"{{adj}}-{{noun}}\",\n",
    "  \"{{var}}\": [{{small}}, {{num}}, {{big}}],\n",
    NULL,
};
static const char *const toml_extensions[] = {".toml", NULL};
static const char *const toml_blocks[] = {
    "[dependencies]\n"
    "{{noun}} = \"{{small}}.{{num}}\"\n"
    "{{noun}} = \"0.{{small}}\"\n"
    "\n",
    "[{{noun1}}]\n"
    "name = \"{{noun1}}\"\n"
    "version = \"{{small}}.{{small}}.{{num}}\"\n"
    "\n",
    NULL,
};
static const char *const log_extensions[] = {".log", NULL};
static const char *const log_blocks[] = {
    "{{date}} {{time}} {{level}} {{noun}}[{{pid}}]: "
    "{{verb}} {{noun}} from {{host}} in {{num}} ms\n",
    "[{{date}} {{time}}] {{level}} {{Verb}} {{noun}} id={{big}}\n",
    "{{date}}T{{time}}Z {{level}} {{noun}}: {{adj}} {{noun}} {{hex}} after {{small}} retries\n",
    NULL,
};
static const char *const markdown_extensions[] = {".md", NULL};
static const char *const markdown_blocks[] = {
    "## {{Verb}} the {{noun}}\n"
    "\n"
    "{{sentence}} {{sentence}}\n"
    "\n",
    "- {{sentence}}\n"
    "- {{sentence}}\n"
    "\n",
    "```sh\n"
    "{{verb}} --{{noun}} {{path}}\n"
    "```\n"
    "\n",
    "{{sentence}}\n"
    "\n",
    NULL,
};
static const char *const csv_extensions[] = {".csv", NULL};
static const char *const csv_blocks[] = {"{{num}},{{noun}},{{big}},{{adj}}\n", NULL};
static const char *const makefile_extensions[] = {"Makefile", NULL};
static const char *const makefile_blocks[] = {
    "{{noun1}}: {{noun1}}.o\n"
    "\t$(CC) $(CFLAGS) -o $@ $^\n"
    "\n",
    "clean:\n"
    "\trm -f *.o {{noun}}\n"
    "\n",
    NULL,
};
static const char *const text_blocks[] = {
    "{{sentence}} {{sentence}}\n",
    "TODO: {{verb}} the {{noun}}\n",
    "{{sentence}}\n"
    "\n",
    "- {{verb}} {{noun}} ({{adj}})\n",
    "{{word}} {{word}}\n",
    "{{Word}} {{word}} {{word}} {{word}}.\n",
    "{{word}}\n",
    NULL,
};

static const style styles[] = {
    {c_extensions, "#include <{{header}}>\n#include <{{header}}>\n\n", c_blocks, NULL},
    {rust_extensions, "use {{crate}};\n\n", rust_blocks, NULL},
    {python_extensions, "import {{module}}\nimport {{module}}\n\n", python_blocks, NULL},
    {shell_extensions, "#!/bin/sh\nset -eu\n\n", shell_blocks, NULL},
    {ini_extensions, "# {{Noun}} configuration\n", ini_blocks, NULL},
    {yaml_extensions, "# {{sentence}}\n", yaml_blocks, NULL},
    {json_extensions, "{\n  \"name\": \"{{noun}}\",\n", json_blocks,
     "  \"enabled\": {{bool}}\n}\n"},
    {toml_extensions, "[package]\nname = \"{{noun}}\"\nversion = \"{{small}}.{{num}}.0\"\n\n",
     toml_blocks, NULL},
    {log_extensions, NULL, log_blocks, NULL},
    {markdown_extensions, "# {{Noun}} {{noun}}\n\n", markdown_blocks, NULL},
    {csv_extensions, "id,name,{{field}},state\n", csv_blocks, NULL},
    {makefile_extensions, "CC = cc\nCFLAGS = -O2 -Wall\n\n", makefile_blocks, NULL},
};
static const style text_style = {NULL, NULL, text_blocks, NULL};
/* What `echo` writes into any file: a word or a short line. */
static const char *const echo_blocks[] = {
    "{{word}}\n",
    "{{Word}} {{word}}\n",
    "{{word}} {{word}} {{word}}\n",
    "{{sentence}}\n",
    NULL,
};
static const style echo_style = {NULL, NULL, echo_blocks, NULL};

static bool ends_with(const char *text, const char *suffix)
{
    size_t text_length = strlen(text), suffix_length = strlen(suffix);
    return text_length >= suffix_length &&
           strcmp(text + text_length - suffix_length, suffix) == 0;
}

static const style *style_for(const char *file_name)
{
    for (size_t i = 0; i < COUNT(styles); i++)
        for (const char *const *extension = styles[i].extensions; *extension; extension++)
            if (ends_with(file_name, *extension))
                return &styles[i];
    return &text_style;
}

bool lf_sim_content_is_script(const char *file_name)
{
    return ends_with(file_name, ".sh") || ends_with(file_name, ".py");
}

/* Expands template into a scratch buffer and appends it to out if the
 * result and `reserve` more bytes fit in `length`.  Returns 1 if appended,
 * 0 if it did not fit, or a negative error. */
static int append_if_fits(lf_random *random, const char *template, size_t length, size_t reserve,
                          lf_buffer *scratch, lf_buffer *out)
{
    expansion state = {.random = random};
    scratch->length = 0;
    int status = expand(&state, template, scratch, 0);
    if (status < 0)
        return status;
    if (out->length + scratch->length + reserve > length)
        return 0;
    return lf_buffer_append(out, scratch->data, scratch->length) < 0 ? -ENOMEM : 1;
}

/* Cuts to at most length bytes without splitting a UTF-8 sequence. */
static void cut_at_character(lf_buffer *text, size_t length)
{
    if (text->length <= length)
        return;
    while (length > 0 && (text->data[length] & 0xc0) == 0x80)
        length--;
    text->length = length;
}

static int64_t generate(lf_random *random, const style *chosen, size_t length, lf_buffer *out)
{
    size_t block_count = 0;
    while (chosen->blocks[block_count])
        block_count++;
    lf_buffer body = {0}, scratch = {0}, footer = {0};
    expansion state = {.random = random};
    int status = chosen->footer ? expand(&state, chosen->footer, &footer, 0) : 0;
    if (status == 0)
        status = chosen->header ? append_if_fits(random, chosen->header, length, footer.length,
                                                 &scratch, &body)
                                : 1;
    /* Whole blocks while they fit (none without the header: a JSON body
     * needs its brace); a few misses in a row end the body. */
    for (int misses = status == 1 ? 0 : 3; status >= 0 && misses < 3;) {
        const char *block = pick(random, chosen->blocks, block_count);
        status = append_if_fits(random, block, length, footer.length, &scratch, &body);
        misses = status == 0 ? misses + 1 : 0;
    }
    if (status >= 0 && body.length == 0 && length > 0) {
        /* Not even one block fits: the start of one, cut. */
        status = append_if_fits(random, chosen->blocks[0], SIZE_MAX, 0, &scratch, &body);
        cut_at_character(&body, length);
    } else if (status >= 0) {
        status = lf_buffer_append(&body, footer.data, footer.length); /* room was kept */
    }
    size_t body_length = body.length;
    if (status >= 0)
        status = lf_buffer_append(out, body.data, body.length);
    lf_buffer_free(&body);
    lf_buffer_free(&scratch);
    lf_buffer_free(&footer);
    return status < 0 ? status : (int64_t)body_length;
}

int64_t lf_sim_content_body(lf_random *random, const char *file_name, size_t length,
                            lf_buffer *out)
{
    return generate(random, style_for(file_name), length, out);
}

int64_t lf_sim_content_continuation(lf_random *random, const char *file_name, size_t length,
                                    lf_buffer *out)
{
    style blocks_only = {.blocks = style_for(file_name)->blocks};
    return generate(random, &blocks_only, length, out);
}

int64_t lf_sim_content_line(lf_random *random, size_t length, lf_buffer *out)
{
    return generate(random, &echo_style, length, out);
}
