/*
 * Debian builds OpenSSL with kernel TLS, so before allocating its write buffer
 * libssl asks its write BIO "is kernel TLS sending on?" (BIO_get_ktls_send,
 * a BIO_ctrl). mediasoup's DTLS write BIO has a callback that returns 1 for
 * every operation other than exactly BIO_CB_RETURN — the "after control call"
 * operation included — so the answer is "yes", no buffer is allocated, and the
 * first DTLS record a browser's handshake makes the worker write dereferences
 * NULL (do_dtls1_write). mediasoup's own OpenSSL is built without kernel TLS
 * and never asks.
 *
 * mediasoup's BIOs are memory BIOs: kernel TLS is never on. libssl's calls to
 * BIO_ctrl are renamed to this function (objcopy --redefine-sym in
 * meson.build), which answers those two questions itself.
 */
#include <openssl/bio.h>

long mafalda_ssl_BIO_ctrl(BIO *bio, int cmd, long larg, void *parg);

long mafalda_ssl_BIO_ctrl(BIO *bio, int cmd, long larg, void *parg)
{
    if (cmd == BIO_CTRL_GET_KTLS_SEND || cmd == BIO_CTRL_GET_KTLS_RECV)
        return 0;
    return BIO_ctrl(bio, cmd, larg, parg);
}
