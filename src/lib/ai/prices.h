/* Model price table (network.md section 12; docs/ai-interpreters.md).
 *
 * File format (share/prices.json, overridable by $CAPSEM_HOME/prices.json):
 *
 *   { "version": "2026.11.29-1",            required, <= 64 bytes
 *     "currency": "USD", "unit": "per_million_tokens",   optional, fixed values
 *     "as_of": "...", "notes": "...",        optional, free text
 *     "replace": false,                     override only: drop the bundled entries
 *     "models": [
 *       { "model": "claude-sonnet-4-5", "provider": "anthropic",
 *         "input": 3.0, "output": 15.0, "cache_read": 0.30, "cache_write": 3.75,
 *         "long_context": { "threshold": 200000, "input": 6.0, "output": 22.5,
 *                           "cache_read": 0.60, "cache_write": 7.50 } } ] }
 *
 * Prices are USD per million tokens, finite and >= 0; input and output are
 * required, cache_read / cache_write optional. An entry with "unpriced": true
 * (and no prices) names a model whose price is not known, so that a shorter
 * entry is not used for it; "note" is free text. `long_context` applies when
 * the prompt (input + cache_read + cache_write tokens) exceeds `threshold`;
 * its missing prices fall back to the base ones. Unknown keys and duplicate
 * (provider, model) entries reject the file.
 *
 * Lookup: entries of the call's provider; an exact model match, else the
 * longest entry that is a prefix of the call's model ending at a name
 * boundary: the model continues with '-', '@' or ':' (or the entry itself
 * ends with one). So "gpt-5" prices "gpt-5-2025-08-07" but not "gpt-5.4",
 * and "claude-sonnet-4-5" prices "claude-sonnet-4-5-20250929". An override
 * replaces bundled entries with the same (provider, model) and adds the
 * others (all of them replace the bundled table with "replace": true).
 *
 * Cost = input*in + cache_read*cr + cache_write*cw + output*out (per 1e6).
 * Unknown model, missing input/output tokens, or tokens of a kind whose price
 * is not in the entry -> no cost (NULL), never a guess.
 *
 * A loaded table is immutable: any number of threads may read it. */
#ifndef CAPSEM_AI_PRICES_H
#define CAPSEM_AI_PRICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define AI_PRICES_MAX_FILE (1u << 20) /* a price file larger than 1 MiB is refused */
#define AI_PRICES_MAX_MODELS 4096u

struct ai_price_tier {
    double input, output, cache_read, cache_write;
    bool has_cache_read, has_cache_write;
};

struct ai_price {
    char *provider;
    char *model;
    struct ai_price_tier base;
    bool unpriced; /* known model whose price is not known: stops prefix matching, no cost */
    bool has_long;
    int64_t long_threshold;
    struct ai_price_tier longer; /* complete: base values filled in where missing */
};

struct ai_prices;

/* Parses a table from memory; `origin` names it in errors ("prices.json").
 * *out is owned by the caller (ai_prices_free). Errors have status 400. */
int ai_prices_parse(const char *text, size_t len, const char *origin, struct ai_prices **out,
                    struct err **errp);

/* Loads the bundled table, then the override when override_path is non-NULL
 * and the file exists (a missing override is not an error; an unreadable or
 * invalid one is: call again with NULL to fall back to the bundled table).
 * The version becomes "<bundled>+<override>" with an override. */
int ai_prices_load(const char *bundled_path, const char *override_path, struct ai_prices **out,
                   struct err **errp);

void ai_prices_free(struct ai_prices *p);

/* Borrowed, valid while p lives. */
const char *ai_prices_version(const struct ai_prices *p);
size_t ai_prices_count(const struct ai_prices *p);

/* Entry for (provider, model) by the rules above, or NULL. provider NULL
 * matches entries of any provider. Borrowed from p. */
const struct ai_price *ai_prices_lookup(const struct ai_prices *p, const char *provider,
                                        const char *model);

/* Token counts as in model_calls; a negative value means NULL. Returns true
 * and *usd when the call can be priced. */
bool ai_prices_cost(const struct ai_prices *p, const char *provider, const char *model,
                    int64_t input, int64_t cache_read, int64_t cache_write, int64_t output,
                    double *usd);

#endif
