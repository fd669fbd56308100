/*
 * libsrtp 3 API facade over Debian's libsrtp2 (2.5), for the mediasoup worker.
 *
 * The worker is written against versatica's libsrtp 3.0-beta, which no package
 * registry ships. It uses a small surface of it; everything that did not change
 * since v2 (init/shutdown/dealloc, the event handler, profiles and their key and
 * salt lengths, SRTP_MAX_* lengths, srtp_ssrc_t) is libsrtp2's own. What v3
 * changed or added is mapped here onto ms_srtp3_* functions (srtp3_facade.c):
 *   - the policy became an opaque object built with srtp_policy_* calls;
 *   - srtp_create takes that object;
 *   - protect/unprotect take size_t lengths and separate in/out buffers;
 *   - srtp_stream_remove (v2: srtp_remove_stream);
 *   - two new error codes, buffer_small and cryptex_err.
 * Written for Mafalda Swarm from the two libraries' public headers' contracts.
 */
#ifndef MAFALDA_SRTP3_FACADE_H
#define MAFALDA_SRTP3_FACADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* v2's policy struct keeps its layout under another name; v3's name is a handle. */
#define srtp_policy_t ms_srtp2_policy_t
#include <srtp2/srtp.h>
#undef srtp_policy_t

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes new in v3, outside v2's range (v2 ends at 27). */
#define srtp_err_status_buffer_small ((srtp_err_status_t)100)
#define srtp_err_status_cryptex_err ((srtp_err_status_t)101)

/** v3's opaque policy handle. */
typedef struct ms_srtp3_policy *srtp_policy_t;

srtp_err_status_t ms_srtp3_policy_create(srtp_policy_t *policy);
void ms_srtp3_policy_destroy(srtp_policy_t policy);
srtp_err_status_t ms_srtp3_policy_set_ssrc(srtp_policy_t policy, srtp_ssrc_t ssrc);
srtp_err_status_t ms_srtp3_policy_set_profile(srtp_policy_t policy, srtp_profile_t profile);
srtp_err_status_t ms_srtp3_policy_add_key(srtp_policy_t policy, const uint8_t *key, size_t key_len,
                                          const uint8_t *salt, size_t salt_len, const uint8_t *mki,
                                          size_t mki_len);
srtp_err_status_t ms_srtp3_policy_set_allow_repeat_tx(srtp_policy_t policy, bool allow);
srtp_err_status_t ms_srtp3_policy_set_window_size(srtp_policy_t policy, size_t window_size);
srtp_err_status_t ms_srtp3_create(srtp_t *session, const srtp_policy_t policy);
srtp_err_status_t ms_srtp3_stream_remove(srtp_t session, uint32_t ssrc);
srtp_err_status_t ms_srtp3_protect(srtp_t ctx, const uint8_t *rtp, size_t rtp_len, uint8_t *srtp,
                                   size_t *srtp_len, size_t mki_index);
srtp_err_status_t ms_srtp3_unprotect(srtp_t ctx, const uint8_t *srtp, size_t srtp_len, uint8_t *rtp,
                                     size_t *rtp_len);
srtp_err_status_t ms_srtp3_protect_rtcp(srtp_t ctx, const uint8_t *rtcp, size_t rtcp_len, uint8_t *srtcp,
                                        size_t *srtcp_len, size_t mki_index);
srtp_err_status_t ms_srtp3_unprotect_rtcp(srtp_t ctx, const uint8_t *srtcp, size_t srtcp_len,
                                          uint8_t *rtcp, size_t *rtcp_len);

#ifdef __cplusplus
}
#endif

#define srtp_policy_create ms_srtp3_policy_create
#define srtp_policy_destroy ms_srtp3_policy_destroy
#define srtp_policy_set_ssrc ms_srtp3_policy_set_ssrc
#define srtp_policy_set_profile ms_srtp3_policy_set_profile
#define srtp_policy_add_key ms_srtp3_policy_add_key
#define srtp_policy_set_allow_repeat_tx ms_srtp3_policy_set_allow_repeat_tx
#define srtp_policy_set_window_size ms_srtp3_policy_set_window_size
#define srtp_create ms_srtp3_create
#define srtp_stream_remove ms_srtp3_stream_remove
#define srtp_protect ms_srtp3_protect
#define srtp_unprotect ms_srtp3_unprotect
#define srtp_protect_rtcp ms_srtp3_protect_rtcp
#define srtp_unprotect_rtcp ms_srtp3_unprotect_rtcp

#endif /* MAFALDA_SRTP3_FACADE_H */
