/* stratumkit native SHA-256d core: see sha256d.h for the contract.
 *
 * Layout: two compression primitives per implementation (one block from a host-order word array,
 * and two independent blocks at once), then the entry points written once on top of them. The
 * two-lane primitive is what makes the SHA-NI path fast: one SHA-256 block is a chain of dependent
 * sha256rnds2 instructions, so running two unrelated blocks side by side fills the idle cycles.
 */
#include "sha256d.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define SK_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t IV[8] = {
    0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
    0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
};

static const uint32_t K[64] __attribute__((aligned(16))) = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

static inline uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static inline void put_le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static inline void load_words(uint32_t w[16], const uint8_t *block) {
    for (int i = 0; i < 16; i++) w[i] = be32(block + 4 * i);
}

/* ---------------------------------------------------------------- portable C */

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define S0(x) (ROR(x, 2) ^ ROR(x, 13) ^ ROR(x, 22))
#define S1(x) (ROR(x, 6) ^ ROR(x, 11) ^ ROR(x, 25))
#define G0(x) (ROR(x, 7) ^ ROR(x, 18) ^ ((x) >> 3))
#define G1(x) (ROR(x, 17) ^ ROR(x, 19) ^ ((x) >> 10))
#define CH(x, y, z) (((x) & ((y) ^ (z))) ^ (z))
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))

static void portable_words(uint32_t st[8], const uint32_t win[16]) {
    uint32_t w[64];
    memcpy(w, win, 64);
    for (int i = 16; i < 64; i++) w[i] = G1(w[i - 2]) + w[i - 7] + G0(w[i - 15]) + w[i - 16];
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + S1(e) + CH(e, f, g) + K[i] + w[i];
        uint32_t t2 = S0(a) + MAJ(a, b, c);
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    st[0] += a; st[1] += b; st[2] += c; st[3] += d; st[4] += e; st[5] += f; st[6] += g; st[7] += h;
}

static void portable_words2(uint32_t sa[8], const uint32_t wa[16], uint32_t sb[8], const uint32_t wb[16]) {
    portable_words(sa, wa);
    portable_words(sb, wb);
}

/* ---------------------------------------------------------------- SHA-NI */
#ifdef SK_X86
#define SHANI __attribute__((target("sha,sse4.1,ssse3"), always_inline)) static inline
#define SHANI_FN __attribute__((target("sha,sse4.1,ssse3")))

#define KV(g) _mm_load_si128((const __m128i *)&K[4 * (g)])
#define RND(S0_, S1_, MC, g) do {                                  \
        __m128i t_ = _mm_add_epi32(MC, KV(g));                     \
        S1_ = _mm_sha256rnds2_epu32(S1_, S0_, t_);                 \
        t_ = _mm_shuffle_epi32(t_, 0x0E);                          \
        S0_ = _mm_sha256rnds2_epu32(S0_, S1_, t_);                 \
    } while (0)
#define MSG2(MC, MN, MP) MN = _mm_sha256msg2_epu32(_mm_add_epi32(MN, _mm_alignr_epi8(MC, MP, 4)), MC)
#define MSG1(MC, MP) MP = _mm_sha256msg1_epu32(MP, MC)

/* The 64 rounds as 16 groups of four; message registers rotate through m0..m3. R(c, g) runs group
 * g on register c; S2(c, n, p) and S1(c, p) extend the schedule. Each lane variant supplies them. */
#define SHANI_ROUNDS(R, S2, S1)                                            \
    R(0, 0);                                                               \
    R(1, 1); S1(1, 0);                                                     \
    R(2, 2); S1(2, 1);                                                     \
    R(3, 3); S2(3, 0, 2); S1(3, 2);                                        \
    R(0, 4); S2(0, 1, 3); S1(0, 3);                                        \
    R(1, 5); S2(1, 2, 0); S1(1, 0);                                        \
    R(2, 6); S2(2, 3, 1); S1(2, 1);                                        \
    R(3, 7); S2(3, 0, 2); S1(3, 2);                                        \
    R(0, 8); S2(0, 1, 3); S1(0, 3);                                        \
    R(1, 9); S2(1, 2, 0); S1(1, 0);                                        \
    R(2, 10); S2(2, 3, 1); S1(2, 1);                                       \
    R(3, 11); S2(3, 0, 2); S1(3, 2);                                       \
    R(0, 12); S2(0, 1, 3); S1(0, 3);                                       \
    R(1, 13); S2(1, 2, 0);                                                 \
    R(2, 14); S2(2, 3, 1);                                                 \
    R(3, 15)

SHANI void shani_load(const uint32_t st[8], __m128i *abef, __m128i *cdgh) {
    __m128i t0 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[0]), 0xB1); /* CDAB */
    __m128i t1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[4]), 0x1B); /* EFGH */
    *abef = _mm_alignr_epi8(t0, t1, 8);
    *cdgh = _mm_blend_epi16(t1, t0, 0xF0);
}

SHANI void shani_store(uint32_t st[8], __m128i abef, __m128i cdgh) {
    __m128i t0 = _mm_shuffle_epi32(abef, 0x1B); /* FEBA */
    __m128i t1 = _mm_shuffle_epi32(cdgh, 0xB1); /* DCHG */
    _mm_storeu_si128((__m128i *)&st[0], _mm_blend_epi16(t0, t1, 0xF0)); /* DCBA */
    _mm_storeu_si128((__m128i *)&st[4], _mm_alignr_epi8(t1, t0, 8));    /* HGFE */
}

#define R1(c, g) RND(s0, s1, m##c, g)
#define S2_1(c, x, p) MSG2(m##c, m##x, m##p)
#define S1_1(c, p) MSG1(m##c, m##p)

static SHANI_FN void shani_words(uint32_t st[8], const uint32_t w[16]) {
    __m128i s0, s1;
    shani_load(st, &s0, &s1);
    const __m128i a0 = s0, a1 = s1;
    __m128i m0 = _mm_loadu_si128((const __m128i *)&w[0]);
    __m128i m1 = _mm_loadu_si128((const __m128i *)&w[4]);
    __m128i m2 = _mm_loadu_si128((const __m128i *)&w[8]);
    __m128i m3 = _mm_loadu_si128((const __m128i *)&w[12]);
    SHANI_ROUNDS(R1, S2_1, S1_1);
    shani_store(st, _mm_add_epi32(s0, a0), _mm_add_epi32(s1, a1));
}

#define R2(c, g) do { RND(s0, s1, m##c, g); RND(t0, t1, q##c, g); } while (0)
#define S2_2(c, x, p) do { MSG2(m##c, m##x, m##p); MSG2(q##c, q##x, q##p); } while (0)
#define S1_2(c, p) do { MSG1(m##c, m##p); MSG1(q##c, q##p); } while (0)

static SHANI_FN void shani_words2(uint32_t sa[8], const uint32_t wa[16], uint32_t sb[8], const uint32_t wb[16]) {
    __m128i s0, s1, t0, t1;
    shani_load(sa, &s0, &s1);
    shani_load(sb, &t0, &t1);
    const __m128i a0 = s0, a1 = s1, b0 = t0, b1 = t1;
    __m128i m0 = _mm_loadu_si128((const __m128i *)&wa[0]);
    __m128i m1 = _mm_loadu_si128((const __m128i *)&wa[4]);
    __m128i m2 = _mm_loadu_si128((const __m128i *)&wa[8]);
    __m128i m3 = _mm_loadu_si128((const __m128i *)&wa[12]);
    __m128i q0 = _mm_loadu_si128((const __m128i *)&wb[0]);
    __m128i q1 = _mm_loadu_si128((const __m128i *)&wb[4]);
    __m128i q2 = _mm_loadu_si128((const __m128i *)&wb[8]);
    __m128i q3 = _mm_loadu_si128((const __m128i *)&wb[12]);
    SHANI_ROUNDS(R2, S2_2, S1_2);
    shani_store(sa, _mm_add_epi32(s0, a0), _mm_add_epi32(s1, a1));
    shani_store(sb, _mm_add_epi32(t0, b0), _mm_add_epi32(t1, b1));
}

/* W[i] + K[i] for the padding block of a 64-byte message: its schedule is constant, so a merkle
 * node's second compression runs the rounds alone. Filled by init_tables(). */
static uint32_t PADWK[64] __attribute__((aligned(16)));

/* root = sha256d(root || right), all three compressions kept in registers. */
static SHANI_FN void shani_node(uint32_t root[8], const uint32_t right[8]) {
    __m128i s0, s1, iv0, iv1;
    shani_load(IV, &iv0, &iv1);
    s0 = iv0; s1 = iv1;
    __m128i m0 = _mm_loadu_si128((const __m128i *)&root[0]);
    __m128i m1 = _mm_loadu_si128((const __m128i *)&root[4]);
    __m128i m2 = _mm_loadu_si128((const __m128i *)&right[0]);
    __m128i m3 = _mm_loadu_si128((const __m128i *)&right[4]);
    SHANI_ROUNDS(R1, S2_1, S1_1);
    s0 = _mm_add_epi32(s0, iv0); s1 = _mm_add_epi32(s1, iv1);
    const __m128i h0 = s0, h1 = s1;
    for (int g = 0; g < 16; g++) {
        __m128i t = _mm_load_si128((const __m128i *)&PADWK[4 * g]);
        s1 = _mm_sha256rnds2_epu32(s1, s0, t);
        t = _mm_shuffle_epi32(t, 0x0E);
        s0 = _mm_sha256rnds2_epu32(s0, s1, t);
    }
    s0 = _mm_add_epi32(s0, h0); s1 = _mm_add_epi32(s1, h1);
    /* the first digest's words become the second message: ABEF/CDGH -> ABCD, EFGH */
    __m128i t0 = _mm_shuffle_epi32(s0, 0x1B), t1 = _mm_shuffle_epi32(s1, 0xB1);
    m0 = _mm_blend_epi16(t0, t1, 0xF0);
    m1 = _mm_alignr_epi8(t1, t0, 8);
    m2 = _mm_set_epi32(0, 0, 0, (int)0x80000000u);
    m3 = _mm_set_epi32(256, 0, 0, 0);
    s0 = iv0; s1 = iv1;
    SHANI_ROUNDS(R1, S2_1, S1_1);
    shani_store(root, _mm_add_epi32(s0, iv0), _mm_add_epi32(s1, iv1));
}

static int cpu_has_shani(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(b & (1u << 29))) return 0;           /* SHA */
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & (1u << 19)) && (c & (1u << 9)); /* SSE4.1, SSSE3 */
}
#endif

/* ---------------------------------------------------------------- dispatch */

typedef void (*words_fn)(uint32_t st[8], const uint32_t w[16]);
typedef void (*words2_fn)(uint32_t sa[8], const uint32_t wa[16], uint32_t sb[8], const uint32_t wb[16]);

typedef void (*node_fn)(uint32_t root[8], const uint32_t right[8]);
static void portable_node(uint32_t root[8], const uint32_t right[8]);

static words_fn compress = portable_words;
static words2_fn compress2 = portable_words2;
static node_fn merkle_node = portable_node;
static int active = SK_IMPL_PORTABLE;
static int detected = 0;

int sk_available(void) {
    int mask = 1 << SK_IMPL_PORTABLE;
#ifdef SK_X86
    if (cpu_has_shani()) mask |= 1 << SK_IMPL_SHANI;
#endif
    return mask;
}

static void init_tables(void) {
#ifdef SK_X86
    uint32_t w[64] = {0x80000000u, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 512};
    for (int i = 16; i < 64; i++) w[i] = G1(w[i - 2]) + w[i - 7] + G0(w[i - 15]) + w[i - 16];
    for (int i = 0; i < 64; i++) PADWK[i] = w[i] + K[i];
#endif
}

int sk_set_impl(int impl) {
    int avail = sk_available();
    if (impl == SK_IMPL_AUTO) impl = (avail & (1 << SK_IMPL_SHANI)) ? SK_IMPL_SHANI : SK_IMPL_PORTABLE;
    if (impl < 1 || impl > 2 || !(avail & (1 << impl))) return -1;
#ifdef SK_X86
    if (impl == SK_IMPL_SHANI) { compress = shani_words; compress2 = shani_words2; merkle_node = shani_node; }
#endif
    if (impl == SK_IMPL_PORTABLE) { compress = portable_words; compress2 = portable_words2; merkle_node = portable_node; }
    init_tables();
    active = impl;
    detected = 1;
    return impl;
}

static inline void ensure_init(void) {
    if (!detected) sk_set_impl(SK_IMPL_AUTO);
}

int sk_impl(void) {
    ensure_init();
    return active;
}

/* ---------------------------------------------------------------- building blocks */

/* Streaming SHA-256 over pieces, so the coinbase is never copied into one buffer. */
typedef struct {
    uint32_t st[8];
    uint8_t buf[64];
    size_t buflen;
    uint64_t total;
} ctx_t;

static inline void ctx_init(ctx_t *c) {
    memcpy(c->st, IV, sizeof IV);
    c->buflen = 0;
    c->total = 0;
}

static void ctx_update(ctx_t *c, const uint8_t *p, size_t n) {
    uint32_t w[16];
    c->total += n;
    if (c->buflen) {
        size_t take = 64 - c->buflen < n ? 64 - c->buflen : n;
        memcpy(c->buf + c->buflen, p, take);
        c->buflen += take; p += take; n -= take;
        if (c->buflen < 64) return;
        load_words(w, c->buf);
        compress(c->st, w);
        c->buflen = 0;
    }
    for (; n >= 64; p += 64, n -= 64) {
        load_words(w, p);
        compress(c->st, w);
    }
    memcpy(c->buf, p, n);
    c->buflen = n;
}

/* Finish and return the digest as its eight state words (the big-endian words of the bytes). */
static void ctx_final_words(ctx_t *c, uint32_t out[8]) {
    uint32_t w[16];
    uint64_t bits = c->total * 8;
    c->buf[c->buflen++] = 0x80;
    if (c->buflen > 56) {
        memset(c->buf + c->buflen, 0, 64 - c->buflen);
        load_words(w, c->buf);
        compress(c->st, w);
        c->buflen = 0;
    }
    memset(c->buf + c->buflen, 0, 56 - c->buflen);
    load_words(w, c->buf);
    w[14] = (uint32_t)(bits >> 32);
    w[15] = (uint32_t)bits;
    compress(c->st, w);
    memcpy(out, c->st, 32);
}

/* The second hash of SHA-256d: a 32-byte message whose words are the first digest's state. */
static inline void second_words(uint32_t w[16], const uint32_t digest[8]) {
    memcpy(w, digest, 32);
    w[8] = 0x80000000u;
    w[9] = w[10] = w[11] = w[12] = w[13] = w[14] = 0;
    w[15] = 256;
}

static inline void words_to_bytes(uint8_t out[32], const uint32_t st[8]) {
    for (int i = 0; i < 8; i++) put_be32(out + 4 * i, st[i]);
}

/* hash <= target, both as 256-bit little-endian numbers; hash given as its state words. */
static inline int words_meet(const uint32_t st[8], const uint8_t target[32]) {
    uint8_t h[32];
    words_to_bytes(h, st);
    for (int i = 31; i >= 0; i--) {
        if (h[i] != target[i]) return h[i] < target[i];
    }
    return 1;
}

/* root = sha256d(root || right) through the generic primitive: 3 compressions. */
static void portable_node(uint32_t root[8], const uint32_t right[8]) {
    static const uint32_t pad64[16] = {0x80000000u, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 512};
    uint32_t st[8], w[16];
    memcpy(w, root, 32);
    memcpy(w + 8, right, 32);
    memcpy(st, IV, 32);
    compress(st, w);
    compress(st, pad64);
    second_words(w, st);
    memcpy(root, IV, 32);
    compress(root, w);
}

/* Tail block of an 80-byte header: bytes 64..79, padding, length 640 bits. */
static inline void header_tail_words(uint32_t w[16], const uint8_t *tail16) {
    w[0] = be32(tail16); w[1] = be32(tail16 + 4); w[2] = be32(tail16 + 8); w[3] = be32(tail16 + 12);
    w[4] = 0x80000000u;
    w[5] = w[6] = w[7] = w[8] = w[9] = w[10] = w[11] = w[12] = w[13] = w[14] = 0;
    w[15] = 640;
}

/* ---------------------------------------------------------------- entry points */

void sk_sha256d(const uint8_t *data, size_t len, uint8_t out[32]) {
    ctx_t c;
    uint32_t d[8], w[16];
    ensure_init();
    ctx_init(&c);
    ctx_update(&c, data, len);
    ctx_final_words(&c, d);
    second_words(w, d);
    memcpy(d, IV, 32);
    compress(d, w);
    words_to_bytes(out, d);
}

void sk_sha256d_many(const uint8_t *data, const size_t *offsets, size_t n, uint8_t *out) {
    for (size_t i = 0; i < n; i++) sk_sha256d(data + offsets[i], offsets[i + 1] - offsets[i], out + 32 * i);
}

size_t sk_hash_headers(const uint8_t *headers, size_t n, const uint8_t target[32],
                       uint8_t *hashes_out, uint32_t *hits) {
    uint32_t sa[8], sb[8], wa[16], wb[16];
    size_t nhits = 0, i = 0;
    ensure_init();
    for (; i + 2 <= n; i += 2) {
        const uint8_t *ha = headers + 80 * i, *hb = ha + 80;
        memcpy(sa, IV, 32); memcpy(sb, IV, 32);
        load_words(wa, ha); load_words(wb, hb);
        compress2(sa, wa, sb, wb);
        header_tail_words(wa, ha + 64); header_tail_words(wb, hb + 64);
        compress2(sa, wa, sb, wb);
        second_words(wa, sa); second_words(wb, sb);
        memcpy(sa, IV, 32); memcpy(sb, IV, 32);
        compress2(sa, wa, sb, wb);
        words_to_bytes(hashes_out + 32 * i, sa);
        words_to_bytes(hashes_out + 32 * (i + 1), sb);
        if (words_meet(sa, target)) hits[nhits++] = (uint32_t)i;
        if (words_meet(sb, target)) hits[nhits++] = (uint32_t)(i + 1);
    }
    for (; i < n; i++) {
        sk_sha256d(headers + 80 * i, 80, hashes_out + 32 * i);
        memcpy(sa, IV, 32);
        uint8_t *h = hashes_out + 32 * i;
        for (int k = 0; k < 8; k++) sa[k] = be32(h + 4 * k);
        if (words_meet(sa, target)) hits[nhits++] = (uint32_t)i;
    }
    return nhits;
}

int sk_job_init(sk_job *job, const uint8_t *coinb1, size_t coinb1_len,
                const uint8_t *coinb2, size_t coinb2_len,
                const uint8_t *branch, size_t n_branch,
                const uint8_t prevhash[32], uint32_t nbits, const uint8_t network_target[32]) {
    uint32_t w[16];
    ensure_init();
    if (n_branch > SK_MAX_BRANCH) return -1;
    size_t whole = coinb1_len & ~(size_t)63;
    memcpy(job->mid, IV, 32);
    for (size_t off = 0; off < whole; off += 64) {
        load_words(w, coinb1 + off);
        compress(job->mid, w);
    }
    job->rest_len = coinb1_len - whole;
    memcpy(job->rest, coinb1 + whole, job->rest_len);
    job->coinb1_len = coinb1_len;
    job->coinb2 = coinb2;
    job->coinb2_len = coinb2_len;
    for (size_t i = 0; i < n_branch; i++)
        for (int k = 0; k < 8; k++) job->branch[i][k] = be32(branch + 32 * i + 4 * k);
    job->n_branch = n_branch;
    memcpy(job->prevhash, prevhash, 32);
    for (int k = 0; k < 8; k++) job->prevhash_words[k] = be32(prevhash + 4 * k);
    job->nbits = nbits;
    memcpy(job->network_target, network_target, 32);
    return 0;
}

int sk_job_check(const sk_job *job, const uint8_t *extranonce1, size_t extranonce1_len,
                 const uint8_t *extranonce2, size_t extranonce2_len,
                 uint32_t version, uint32_t ntime, uint32_t nonce,
                 const uint8_t share_target[32], uint8_t out[112]) {
    ctx_t c;
    uint32_t root[8], w[16], st[8];
    uint8_t *header = out, *hash = out + 80;
    ensure_init();

    memcpy(c.st, job->mid, 32);
    c.total = job->coinb1_len - job->rest_len;
    c.buflen = 0;
    ctx_update(&c, job->rest, job->rest_len);
    ctx_update(&c, extranonce1, extranonce1_len);
    ctx_update(&c, extranonce2, extranonce2_len);
    ctx_update(&c, job->coinb2, job->coinb2_len);
    ctx_final_words(&c, st);
    second_words(w, st);
    memcpy(root, IV, 32);
    compress(root, w);
    for (size_t i = 0; i < job->n_branch; i++) merkle_node(root, job->branch[i]);

    /* The header's message words straight from the root's state words (the root's bytes are
     * those words big-endian, and so is the message): no byte round trip on the critical path. */
    w[0] = __builtin_bswap32(version);
    memcpy(w + 1, job->prevhash_words, 32);
    memcpy(w + 9, root, 28);
    memcpy(st, IV, 32);
    compress(st, w);
    w[0] = root[7];
    w[1] = __builtin_bswap32(ntime);
    w[2] = __builtin_bswap32(job->nbits);
    w[3] = __builtin_bswap32(nonce);
    w[4] = 0x80000000u;
    memset(w + 5, 0, 40);
    w[15] = 640;
    compress(st, w);
    second_words(w, st);
    memcpy(st, IV, 32);
    compress(st, w);
    words_to_bytes(hash, st);

    put_le32(header, version);
    memcpy(header + 4, job->prevhash, 32);
    words_to_bytes(header + 36, root);
    put_le32(header + 68, ntime);
    put_le32(header + 72, job->nbits);
    put_le32(header + 76, nonce);

    int flags = 0;
    if (words_meet(st, share_target)) flags |= SK_MEETS_SHARE;
    if (words_meet(st, job->network_target)) flags |= SK_MEETS_NETWORK;
    return flags;
}

size_t sk_scan(const uint8_t header76[76], uint32_t start, uint64_t count,
               const uint8_t target[32], uint32_t *found, size_t max_found) {
    uint32_t mid[8], w[16], wa[16], wb[16], sa[8], sb[8];
    size_t nfound = 0;
    ensure_init();
    if (max_found == 0) return 0;
    memcpy(mid, IV, 32);
    load_words(w, header76);
    compress(mid, w);

    /* Most hashes fail on their top 32 bits: compare those first (the top word of the number is
     * the byte-swap of state word 7), and only then the full 256 bits. */
    uint32_t target_top = (uint32_t)target[31] << 24 | (uint32_t)target[30] << 16 |
                          (uint32_t)target[29] << 8 | target[28];
    uint8_t tail_bytes[16] = {0};
    memcpy(tail_bytes, header76 + 64, 12);
    uint32_t tail[16];
    header_tail_words(tail, tail_bytes);

    uint64_t i = 0;
    for (; i + 2 <= count; i += 2) {
        uint32_t na = start + (uint32_t)i, nb = na + 1;
        memcpy(wa, tail, 64); memcpy(wb, tail, 64);
        wa[3] = __builtin_bswap32(na); wb[3] = __builtin_bswap32(nb);
        memcpy(sa, mid, 32); memcpy(sb, mid, 32);
        compress2(sa, wa, sb, wb);
        second_words(wa, sa); second_words(wb, sb);
        memcpy(sa, IV, 32); memcpy(sb, IV, 32);
        compress2(sa, wa, sb, wb);
        if (__builtin_bswap32(sa[7]) <= target_top && words_meet(sa, target)) {
            found[nfound++] = na;
            if (nfound == max_found) return nfound;
        }
        if (__builtin_bswap32(sb[7]) <= target_top && words_meet(sb, target)) {
            found[nfound++] = nb;
            if (nfound == max_found) return nfound;
        }
    }
    for (; i < count; i++) {
        uint32_t n = start + (uint32_t)i;
        memcpy(wa, tail, 64);
        wa[3] = __builtin_bswap32(n);
        memcpy(sa, mid, 32);
        compress(sa, wa);
        second_words(wa, sa);
        memcpy(sa, IV, 32);
        compress(sa, wa);
        if (__builtin_bswap32(sa[7]) <= target_top && words_meet(sa, target)) {
            found[nfound++] = n;
            if (nfound == max_found) return nfound;
        }
    }
    return nfound;
}
