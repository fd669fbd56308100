/*
 * Implementation of the libsrtp 3 facade (include/srtp.h) with libsrtp2 calls.
 * v2 protects in place and may write a trailer after the packet, so each call
 * checks the output capacity, copies input to output, then runs v2 in place.
 */
#include "srtp.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* From here on the plain names are libsrtp2's own functions. */
#undef srtp_create
#undef srtp_protect
#undef srtp_unprotect
#undef srtp_protect_rtcp
#undef srtp_unprotect_rtcp

/* v2 writes up to this much after an RTCP packet (trailer plus the SRTCP index). */
#define MS_SRTCP_MAX_TRAILER_LEN (SRTP_MAX_TRAILER_LEN + 4)

struct ms_srtp3_policy {
    ms_srtp2_policy_t v2;
    unsigned char key[SRTP_MAX_KEY_LEN]; /* master key followed by master salt */
    bool has_profile;
    bool has_key;
};

srtp_err_status_t ms_srtp3_policy_create(srtp_policy_t *policy)
{
    if (policy == NULL)
        return srtp_err_status_bad_param;
    *policy = calloc(1, sizeof(struct ms_srtp3_policy));
    if (*policy == NULL)
        return srtp_err_status_alloc_fail;
    (*policy)->v2.key = (*policy)->key;
    (*policy)->v2.next = NULL;
    return srtp_err_status_ok;
}

void ms_srtp3_policy_destroy(srtp_policy_t policy)
{
    if (policy == NULL)
        return;
    /* Key material must not linger in freed memory. */
    memset(policy->key, 0, sizeof(policy->key));
    free(policy);
}

srtp_err_status_t ms_srtp3_policy_set_ssrc(srtp_policy_t policy, srtp_ssrc_t ssrc)
{
    if (policy == NULL)
        return srtp_err_status_bad_param;
    policy->v2.ssrc = ssrc;
    return srtp_err_status_ok;
}

srtp_err_status_t ms_srtp3_policy_set_profile(srtp_policy_t policy, srtp_profile_t profile)
{
    srtp_err_status_t err;
    if (policy == NULL)
        return srtp_err_status_bad_param;
    err = srtp_crypto_policy_set_from_profile_for_rtp(&policy->v2.rtp, profile);
    if (err != srtp_err_status_ok)
        return err;
    err = srtp_crypto_policy_set_from_profile_for_rtcp(&policy->v2.rtcp, profile);
    if (err != srtp_err_status_ok)
        return err;
    policy->has_profile = true;
    return srtp_err_status_ok;
}

srtp_err_status_t ms_srtp3_policy_add_key(srtp_policy_t policy, const uint8_t *key, size_t key_len,
                                          const uint8_t *salt, size_t salt_len, const uint8_t *mki,
                                          size_t mki_len)
{
    (void)mki;
    if (policy == NULL || key == NULL || (salt == NULL && salt_len != 0))
        return srtp_err_status_bad_param;
    /* One key without MKI is all the worker uses; v2's multi-key API is not mapped. */
    if (mki_len != 0 || policy->has_key)
        return srtp_err_status_bad_param;
    if (key_len > sizeof(policy->key) || salt_len > sizeof(policy->key) - key_len)
        return srtp_err_status_bad_param;
    memcpy(policy->key, key, key_len);
    if (salt_len != 0)
        memcpy(policy->key + key_len, salt, salt_len);
    policy->has_key = true;
    return srtp_err_status_ok;
}

srtp_err_status_t ms_srtp3_policy_set_allow_repeat_tx(srtp_policy_t policy, bool allow)
{
    if (policy == NULL)
        return srtp_err_status_bad_param;
    policy->v2.allow_repeat_tx = allow ? 1 : 0;
    return srtp_err_status_ok;
}

srtp_err_status_t ms_srtp3_policy_set_window_size(srtp_policy_t policy, size_t window_size)
{
    if (policy == NULL)
        return srtp_err_status_bad_param;
    policy->v2.window_size = (unsigned long)window_size;
    return srtp_err_status_ok;
}

srtp_err_status_t ms_srtp3_create(srtp_t *session, const srtp_policy_t policy)
{
    if (session == NULL || policy == NULL || !policy->has_profile || !policy->has_key)
        return srtp_err_status_bad_param;
    return srtp_create(session, &policy->v2);
}

srtp_err_status_t ms_srtp3_stream_remove(srtp_t session, uint32_t ssrc)
{
    return srtp_remove_stream(session, ssrc);
}

typedef srtp_err_status_t (*ms_srtp2_in_place_fn)(srtp_t, void *, int *);

/* Copies `in` to `out` (which must hold `needed` bytes), then transforms in place. */
static srtp_err_status_t ms_srtp3_transform(ms_srtp2_in_place_fn transform, srtp_t ctx, const uint8_t *in,
                                            size_t in_len, uint8_t *out, size_t *out_len, size_t needed)
{
    int len;
    srtp_err_status_t err;
    if (in == NULL || out == NULL || out_len == NULL)
        return srtp_err_status_bad_param;
    if (in_len > (size_t)INT_MAX - MS_SRTCP_MAX_TRAILER_LEN)
        return srtp_err_status_bad_param;
    if (*out_len < needed)
        return srtp_err_status_buffer_small;
    if (out != in)
        memmove(out, in, in_len);
    len = (int)in_len;
    err = transform(ctx, out, &len);
    if (err != srtp_err_status_ok)
        return err;
    *out_len = (size_t)len;
    return srtp_err_status_ok;
}

srtp_err_status_t ms_srtp3_protect(srtp_t ctx, const uint8_t *rtp, size_t rtp_len, uint8_t *srtp,
                                   size_t *srtp_len, size_t mki_index)
{
    if (mki_index != 0)
        return srtp_err_status_bad_mki;
    return ms_srtp3_transform(srtp_protect, ctx, rtp, rtp_len, srtp, srtp_len, rtp_len + SRTP_MAX_TRAILER_LEN);
}

srtp_err_status_t ms_srtp3_unprotect(srtp_t ctx, const uint8_t *srtp, size_t srtp_len, uint8_t *rtp,
                                     size_t *rtp_len)
{
    return ms_srtp3_transform(srtp_unprotect, ctx, srtp, srtp_len, rtp, rtp_len, srtp_len);
}

srtp_err_status_t ms_srtp3_protect_rtcp(srtp_t ctx, const uint8_t *rtcp, size_t rtcp_len, uint8_t *srtcp,
                                        size_t *srtcp_len, size_t mki_index)
{
    if (mki_index != 0)
        return srtp_err_status_bad_mki;
    return ms_srtp3_transform(srtp_protect_rtcp, ctx, rtcp, rtcp_len, srtcp, srtcp_len,
                              rtcp_len + MS_SRTCP_MAX_TRAILER_LEN);
}

srtp_err_status_t ms_srtp3_unprotect_rtcp(srtp_t ctx, const uint8_t *srtcp, size_t srtcp_len, uint8_t *rtcp,
                                          size_t *rtcp_len)
{
    return ms_srtp3_transform(srtp_unprotect_rtcp, ctx, srtcp, srtcp_len, rtcp, rtcp_len, srtcp_len);
}
