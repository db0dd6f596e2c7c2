#ifndef WSP_SAMPLE_JSON_H
#define WSP_SAMPLE_JSON_H

/* A realistic push payload for the deflate tests and measurements: a JSON array of
 * notification objects (ids, timestamps, user-facing text, URLs), deterministic for a seed. */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Writes the array into out[0..cap), adding objects while it is shorter than target bytes;
 * returns its length (cap must leave room for one more object, ~400 bytes). */
static inline size_t wsp_sample_json(char *out, size_t cap, size_t target, uint32_t seed)
{
    static const char *const types[] = {"order.shipped", "order.delivered", "comment.created",
                                        "mention",       "payment.failed",  "invite.accepted"};
    static const char *const titles[] = {
        "Your order has shipped",           "Your order was delivered",
        "New comment on your post",         "You were mentioned in a thread",
        "A payment could not be processed", "Your invitation was accepted"};
    static const char *const bodies[] = {
        "Track the package on the carrier's site; delivery is expected within two days.",
        "Left at the front door. Let us know if anything is missing or damaged.",
        "\\\"Great write-up, thanks for sharing the benchmark numbers!\\\"",
        "Can you take a look at the deployment checklist before Friday's release?",
        "Update your card details to keep your subscription active.",
        "Say hello and share the project board with your new teammate."};
    static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uint32_t s = seed * 2654435761u + 1;
    size_t n = 0;
    out[n++] = '[';
    for (unsigned i = 0; n < target; i++) {
        s = s * 1664525u + 1013904223u;
        unsigned k = (s >> 24) % 6;
        char id[27];
        uint32_t t = s;
        for (int j = 0; j < 26; j++) {
            t = t * 1103515245u + 12345u;
            id[j] = b32[(t >> 16) & 31];
        }
        id[26] = '\0';
        unsigned user = 10000 + (s >> 8) % 90000, order = 100000 + (s >> 4) % 900000;
        int w = snprintf(out + n, cap - n,
                         "%s{\"id\":\"ntf_%s\",\"type\":\"%s\",\"created_at\":\"2026-12-06T10:%02u:"
                         "%02u.%03uZ\",\"user_id\":%u,\"title\":\"%s\",\"body\":\"%s\",\"url\":"
                         "\"https://app.example.com/orders/%u?ref=push\",\"read\":false,"
                         "\"priority\":\"%s\",\"badge\":%u}",
                         i ? "," : "", id, types[k], (s >> 3) % 60, (s >> 9) % 60, (s >> 13) % 1000,
                         user, titles[k], bodies[k], order, (s & 1) ? "high" : "normal",
                         1 + (s >> 20) % 9);
        if (w < 0 || (size_t)w >= cap - n - 1)
            break;
        n += (size_t)w;
    }
    out[n++] = ']';
    out[n] = '\0';
    return n;
}

#endif
