/* OpenSSL for Swift: the system's libssl (Debian's libssl-dev to build, libssl3 to run) behind a
 * few calls that keep Vigil's blocking-socket model: a client context, a handshake on a socket
 * that is already connected (SNI, chain and host name verified), writes without SIGPIPE, reads,
 * and a clean close. libssl.so.3 is opened (dlopen) by the first context, so a daemon without
 * TLS actions neither maps it nor needs it installed. Every failing call fills `error` with a
 * one-line reason. Swift sees only opaque handles, no OpenSSL header. */
#ifndef CVIGILTLS_H
#define CVIGILTLS_H

#include <stddef.h>

/** A client configuration (OpenSSL's SSL_CTX). */
typedef struct cvigiltls_context cvigiltls_context;
/** One TLS session (OpenSSL's SSL) over a connected socket. */
typedef struct cvigiltls_session cvigiltls_session;

/** A client context (SSL_CTX_new, TLS 1.2 or newer). `verify`: check the peer's chain against
 * `ca_file` (a PEM bundle, SSL_CTX_load_verify_locations) or, when `ca_file` is NULL, the
 * system's store (SSL_CTX_set_default_verify_paths). NULL on failure (libssl.so.3 missing, a
 * bundle without certificates), with `error` filled. */
cvigiltls_context *cvigiltls_context_new(const char *ca_file, int verify, char *error, size_t error_size);

/** Frees a context (SSL_CTX_free); sessions made from it keep their own reference. */
void cvigiltls_context_free(cvigiltls_context *context);

/** SSL_connect over the connected blocking socket `fd` (not closed by the session). `host`
 * goes in SNI (unless it is an IP literal) and, when the context verifies, must match the
 * certificate (SSL_set1_host, or X509_VERIFY_PARAM_set1_ip_asc for an IP). The socket's
 * SO_RCVTIMEO/SO_SNDTIMEO bound every step. NULL on failure, with `error` filled
 * ("certificate verify failed: self-signed certificate", "hostname mismatch", "timed out"). */
cvigiltls_session *cvigiltls_connect(cvigiltls_context *context, int fd, const char *host, char *error, size_t error_size);

/** Writes all `length` bytes (SSL_write_ex; send with MSG_NOSIGNAL). 0, or -1 with `error` filled. */
int cvigiltls_write(cvigiltls_session *session, const void *data, size_t length, char *error, size_t error_size);

/** Reads what is available, at most `length` bytes (SSL_read_ex): the count, 0 at the end of
 * the stream (close_notify, or the peer closed the connection), -1 with `error` filled. */
long cvigiltls_read(cvigiltls_session *session, void *data, size_t length, char *error, size_t error_size);

/** Sends close_notify (one SSL_shutdown, not waiting for the peer's) and frees the session. */
void cvigiltls_close(cvigiltls_session *session);

#endif
