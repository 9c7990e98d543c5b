/* Price table: bundled share/prices.json (path in argv[1]), lookup rules,
 * cost math, override file (src/lib/ai/prices.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "test_ai_common.h"

static const char *bundled = CAPSEM_SOURCE_SHARE "/prices.json";

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-12;
}

static const char *entry_of(const struct ai_prices *p, const char *provider, const char *model)
{
    const struct ai_price *e = ai_prices_lookup(p, provider, model);
    return e ? e->model : NULL;
}

static void test_lookup(const struct ai_prices *p)
{
    is_str(ai_prices_version(p), "2026.11.29-1", "bundled version");
    ok(ai_prices_count(p) >= 30, "bundled table has %zu entries", ai_prices_count(p));
    is_str(entry_of(p, "anthropic", "claude-sonnet-4-5"), "claude-sonnet-4-5", "exact match");
    is_str(entry_of(p, "anthropic", "claude-sonnet-4-5-20250929"), "claude-sonnet-4-5",
           "dated id: prefix match");
    is_str(entry_of(p, "openai", "gpt-4o-mini-2024-07-18"), "gpt-4o-mini",
           "longest prefix wins (gpt-4o-mini over gpt-4o)");
    is_str(entry_of(p, "openai", "gpt-4o-2024-05-13"), "gpt-4o-2024-05-13",
           "exact match beats a prefix");
    is_str(entry_of(p, "openai", "gpt-4o-2024-08-06"), "gpt-4o", "other gpt-4o snapshot");
    is_str(entry_of(p, "openai", "gpt-5-2025-08-07"), "gpt-5", "gpt-5 snapshot");
    ok(entry_of(p, "openai", "gpt-5.4") == NULL, "gpt-5.4 is not priced as gpt-5 (boundary)");
    ok(entry_of(p, "openai", "gpt-5x") == NULL, "no match inside a name");
    is_str(entry_of(p, "openai", "o3-mini-2025-01-31"), "o3-mini", "o3-mini");
    is_str(entry_of(p, "google", "gemini-2.5-flash-lite-preview-09-2025"),
           "gemini-2.5-flash-lite", "gemini flash-lite preview");
    ok(entry_of(p, "openai", "claude-sonnet-4-5") == NULL, "provider must match");
    is_str(entry_of(p, NULL, "claude-haiku-4-5-20251001"), "claude-haiku-4-5", "any provider");
    ok(entry_of(p, "anthropic", "claude-opus-4-6") == NULL, "unknown model: no entry");
    ok(entry_of(p, "anthropic", NULL) == NULL, "NULL model");
    const struct ai_price *img = ai_prices_lookup(p, "google", "gemini-2.5-flash-image-preview");
    ok(img && img->unpriced, "an unpriced entry stops the shorter prefix");
    double usd = -1;
    ok(!ai_prices_cost(p, "google", "gemini-2.5-flash-image", 10, 0, 0, 10, &usd),
       "unpriced entry: no cost");
}

static void test_cost(const struct ai_prices *p)
{
    double usd = -1;
    ok(ai_prices_cost(p, "anthropic", "claude-sonnet-4-5-20250929", 1000, 2000, 500, 300, &usd),
       "sonnet priced");
    ok(near(usd, (1000 * 3.0 + 2000 * 0.30 + 500 * 3.75 + 300 * 15.0) / 1e6),
       "cost = in*3 + cr*0.30 + cw*3.75 + out*15 per million (%.9f)", usd);
    ok(ai_prices_cost(p, "anthropic", "claude-sonnet-4-5", 150000, 60000, 0, 1000, &usd),
       "long-context sonnet priced");
    ok(near(usd, (150000 * 6.0 + 60000 * 0.60 + 1000 * 22.5) / 1e6),
       "prompt over 200k uses the long-context tier (%.9f)", usd);
    ok(ai_prices_cost(p, "anthropic", "claude-sonnet-4-5", 140000, 60000, 0, 1000, &usd) &&
           near(usd, (140000 * 3.0 + 60000 * 0.30 + 1000 * 15.0) / 1e6),
       "prompt of exactly 200k uses the base tier");
    ok(ai_prices_cost(p, "openai", "gpt-4.1-2025-04-14", 176, 1024, AI_NULL, 64, &usd) &&
           near(usd, (176 * 2.0 + 1024 * 0.5 + 64 * 8.0) / 1e6),
       "gpt-4.1 with cached tokens, NULL cache write");
    ok(ai_prices_cost(p, "google", "gemini-2.5-pro", 1000, 0, AI_NULL, 500, &usd) &&
           near(usd, (1000 * 1.25 + 500 * 10.0) / 1e6),
       "gemini-2.5-pro without cache");
    ok(!ai_prices_cost(p, "google", "gemini-2.5-pro", 1000, 10, AI_NULL, 500, &usd),
       "cached tokens without a cache price: no cost (never a guess)");
    ok(ai_prices_cost(p, "google", "gemini-2.5-pro", 190000, 0, AI_NULL, 100, &usd) &&
           near(usd, (190000 * 1.25 + 100 * 10.0) / 1e6),
       "gemini under the threshold");
    ok(ai_prices_cost(p, "google", "gemini-2.5-pro", 210000, 0, AI_NULL, 100, &usd) &&
           near(usd, (210000 * 2.5 + 100 * 15.0) / 1e6),
       "gemini over the threshold");
    ok(!ai_prices_cost(p, "anthropic", "claude-unknown", 1, 0, 0, 1, &usd), "unknown: no cost");
    ok(!ai_prices_cost(p, "anthropic", "claude-sonnet-4-5", AI_NULL, 0, 0, 1, &usd),
       "NULL input: no cost");
    ok(!ai_prices_cost(p, "anthropic", "claude-sonnet-4-5", 1, 0, 0, AI_NULL, &usd),
       "NULL output: no cost");
    ok(!ai_prices_cost(NULL, "anthropic", "claude-sonnet-4-5", 1, 0, 0, 1, &usd), "no table");
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static void test_override(const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/prices.json", dir);
    struct ai_prices *p = NULL;
    struct err *e = NULL;
    ok(ai_prices_load(bundled, path, &p, &e) == 0, "missing override is not an error");
    is_str(ai_prices_version(p), "2026.11.29-1", "version without override");
    ai_prices_free(p);

    write_file(path, "{\"version\":\"local-1\",\"models\":["
                     "{\"provider\":\"anthropic\",\"model\":\"claude-sonnet-4-5\",\"input\":4,"
                     "\"output\":16,\"note\":\"negotiated\"},"
                     "{\"provider\":\"openai\",\"model\":\"ft:gpt-4.1\",\"input\":3,"
                     "\"output\":12}]}");
    ok(ai_prices_load(bundled, path, &p, &e) == 0, "override loaded");
    is_str(ai_prices_version(p), "2026.11.29-1+local-1", "version names both tables");
    double usd;
    ok(ai_prices_cost(p, "anthropic", "claude-sonnet-4-5-20250929", 1000000, 0, 0, 0, &usd) &&
           near(usd, 4.0),
       "overridden entry replaces the bundled one");
    ok(!ai_prices_cost(p, "anthropic", "claude-sonnet-4-5", 1, 5, 0, 1, &usd),
       "override without cache prices: cached calls unpriced");
    ok(ai_prices_cost(p, "openai", "ft:gpt-4.1:org:custom:abc", 1000000, 0, 0, 1000000, &usd) &&
           near(usd, 15.0),
       "added entry matches by prefix at ':'");
    is_str(entry_of(p, "openai", "gpt-4o"), "gpt-4o", "bundled entries kept");
    ai_prices_free(p);

    write_file(path, "{\"version\":\"only\",\"replace\":true,\"models\":[{\"provider\":\"x\","
                     "\"model\":\"m\",\"input\":1,\"output\":1}]}");
    ok(ai_prices_load(bundled, path, &p, &e) == 0, "replacing override loaded");
    ok(ai_prices_count(p) == 1 && entry_of(p, "anthropic", "claude-sonnet-4-5") == NULL,
       "replace drops the bundled entries");
    ai_prices_free(p);

    write_file(path, "{\"version\":\"bad\",\"models\":[{\"provider\":\"x\",\"model\":\"m\","
                     "\"input\":-1,\"output\":1}]}");
    ok(ai_prices_load(bundled, path, &p, &e) < 0 && p == NULL, "invalid override fails");
    ok(e && strstr(err_msg(e), "prices.json: models[0]: \"input\" must be a number >= 0"),
       "error names the file, entry and field: %s", e ? err_msg(e) : "");
    err_free(e);
    e = NULL;
    ok(ai_prices_load(bundled, NULL, &p, &e) == 0, "fallback to the bundled table");
    ai_prices_free(p);
    unlink(path);
    ok(ai_prices_load("/nonexistent/prices.json", NULL, &p, &e) < 0, "missing bundled fails");
    err_free(e);
}

static void bad(const char *text, const char *want, const char *what)
{
    struct ai_prices *p = NULL;
    struct err *e = NULL;
    int rc = ai_prices_parse(text, strlen(text), "t.json", &p, &e);
    ok(rc < 0 && p == NULL && e && e->status == 400 && strstr(err_msg(e), want), "%s: %s", what,
       e ? err_msg(e) : "(accepted)");
    err_free(e);
    ai_prices_free(p);
}

static void test_invalid(void)
{
    bad("[]", "must be a JSON object", "array root");
    bad("{\"version\":\"1\",\"models\":[", "t.json: line 1", "broken JSON");
    bad("{\"models\":[]}", "\"version\"", "missing version");
    bad("{\"version\":\"1\",\"models\":[],\"extra\":1}", "unknown key \"extra\"", "unknown key");
    bad("{\"version\":\"1\",\"currency\":\"EUR\",\"models\":[]}", "\"currency\"", "currency");
    bad("{\"version\":\"1\"}", "\"models\" must be an array", "no models");
    bad("{\"version\":\"1\",\"models\":[{\"provider\":\"a\",\"model\":\"m\",\"input\":1}]}",
        "are required", "missing output");
    bad("{\"version\":\"1\",\"models\":[{\"provider\":\"a\",\"model\":\"m\",\"input\":1,"
        "\"output\":\"2\"}]}",
        "\"output\" must be a number", "string price");
    bad("{\"version\":\"1\",\"models\":[{\"provider\":\"a\",\"model\":\"m\",\"input\":1,"
        "\"output\":1,\"inptu\":1}]}",
        "unknown key \"inptu\"", "typo in an entry");
    bad("{\"version\":\"1\",\"models\":[{\"provider\":\"a\",\"model\":\"m\",\"input\":1,"
        "\"output\":1},{\"provider\":\"a\",\"model\":\"m\",\"input\":2,\"output\":2}]}",
        "duplicate entry", "duplicate");
    bad("{\"version\":\"1\",\"models\":[{\"provider\":\"a\",\"model\":\"m\",\"unpriced\":true,"
        "\"input\":1}]}",
        "unpriced entry has no prices", "unpriced with a price");
    bad("{\"version\":\"1\",\"models\":[{\"provider\":\"a\",\"model\":\"m\",\"input\":1,"
        "\"output\":1,\"long_context\":{\"threshold\":0}}]}",
        "positive integer", "zero threshold");
    bad("{\"version\":\"1\",\"models\":[{\"provider\":\"a\",\"model\":\"\",\"input\":1,"
        "\"output\":1}]}",
        "\"model\"", "empty model");
    bad("{\"version\":\"1\",\"models\":[],\"models\":[]}", "duplicate", "duplicate key");
    struct ai_prices *p = NULL;
    const char *partial = "{\"version\":\"1\",\"models\":[{\"provider\":\"a\",\"model\":\"m\","
                          "\"input\":1,\"output\":1,\"long_context\":{\"threshold\":10,"
                          "\"output\":2}}]}";
    ok(ai_prices_parse(partial, strlen(partial), "t", &p, NULL) == 0,
       "partial long-context tier accepted");
    double usd;
    ok(ai_prices_cost(p, "a", "m", 20, 0, 0, 1000000, &usd) && near(usd, 2.0 + 20 / 1e6),
       "missing tier input falls back to the base price");
    ai_prices_free(p);
}

/* End to end: a finished response carries cost and table version. */
static void test_result_cost(const struct ai_prices *p)
{
    struct t_call c = {
        .host = "api.anthropic.com",
        .path = "/v1/messages",
        .content_type = "application/json",
        .prices = p,
        .body = "{\"id\":\"m\",\"type\":\"message\",\"model\":\"claude-haiku-4-5-20251001\","
                "\"content\":[],\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":1000,"
                "\"cache_creation_input_tokens\":2000,\"cache_read_input_tokens\":3000,"
                "\"output_tokens\":400}}"};
    struct ai_result *r = t_run(&c);
    ok(r && r->has_cost && near(r->cost_usd, (1000 * 1.0 + 3000 * 0.10 + 2000 * 1.25 +
                                              400 * 5.0) / 1e6),
       "result cost for haiku 4.5 (%.9f)", r ? r->cost_usd : -1);
    is_str(r ? r->price_table_version : NULL, "2026.11.29-1", "price_table_version");
    ai_result_free(r);
    c.body = "{\"id\":\"m\",\"model\":\"claude-future-9\",\"usage\":{\"input_tokens\":1,"
             "\"output_tokens\":1}}";
    r = t_run(&c);
    ok(r && !r->has_cost && r->price_table_version, "unknown model: NULL cost, version kept");
    ai_result_free(r);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        bundled = argv[1];
    struct ai_prices *p = NULL;
    struct err *e = NULL;
    if (ai_prices_load(bundled, NULL, &p, &e) < 0) {
        diag("load %s: %s", bundled, err_msg(e));
        err_free(e);
        ok(0, "bundled table loads");
        return done_testing();
    }
    ok(1, "bundled table loads");
    test_lookup(p);
    test_cost(p);
    test_result_cost(p);
    ai_prices_free(p);
    char dir[] = "/tmp/capsem-test-prices-XXXXXX";
    if (mkdtemp(dir)) {
        test_override(dir);
        rmdir(dir);
    }
    test_invalid();
    return done_testing();
}
