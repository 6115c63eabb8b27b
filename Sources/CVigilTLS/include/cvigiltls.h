/* OpenSSL for Swift: the system's libssl (Debian's libssl-dev to build, libssl3 to run) behind a
 * few calls that keep Vigil's blocking-socket model: a client context, a handshake on a socket
 * that is already connected (SNI, chain and host name verified), writes without SIGPIPE, reads,
 * and a clean close. Every failing call fills `error` with a one-line reason. */
#ifndef CVIGILTLS_H
#define CVIGILTLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/** A client SSL_CTX (TLS 1.2 or newer). `verify`: check the peer's chain against `ca_file` (a
 * PEM bundle) or, when `ca_file` is NULL, the system's store (SSL_CTX_set_default_verify_paths).
 * NULL on failure, with `error` filled. Free with SSL_CTX_free. */
SSL_CTX *cvigiltls_context_new(const char *ca_file, int verify, char *error, size_t error_size);

/** SSL_connect over the connected blocking socket `fd` (not closed by the session). `host`
 * goes in SNI (unless it is an IP literal) and, when the context verifies, must match the
 * certificate (SSL_set1_host, or X509_VERIFY_PARAM_set1_ip_asc for an IP). The socket's
 * SO_RCVTIMEO/SO_SNDTIMEO bound every step. NULL on failure, with `error` filled
 * ("certificate verify failed: self-signed certificate", "hostname mismatch", "timed out"). */
SSL *cvigiltls_connect(SSL_CTX *context, int fd, const char *host, char *error, size_t error_size);

/** Writes all `length` bytes (SSL_write_ex). 0, or -1 with `error` filled. */
int cvigiltls_write(SSL *ssl, const void *data, size_t length, char *error, size_t error_size);

/** Reads what is available, at most `length` bytes (SSL_read_ex): the count, 0 at the end of
 * the stream (close_notify, or the peer closed the connection), -1 with `error` filled. */
long cvigiltls_read(SSL *ssl, void *data, size_t length, char *error, size_t error_size);

/** Sends close_notify (one SSL_shutdown, not waiting for the peer's) and frees the session. */
void cvigiltls_close(SSL *ssl);

#endif
