#include "cvigiltls.h"
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* The OpenSSL functions used, resolved from libssl.so.3 (and the libcrypto.so.3 it loads) on
 * first use. Macros of the API (SSL_set_tlsext_host_name, BIO_get_fd, ...) are spelled out
 * below as the *_ctrl / *_flags calls they expand to. */
#define OPENSSL_FUNCTIONS(X)                                                                       \
    X(TLS_client_method) X(SSL_CTX_new) X(SSL_CTX_free) X(SSL_CTX_ctrl) X(SSL_CTX_set_options)      \
    X(SSL_CTX_set_verify) X(SSL_CTX_get_verify_mode) X(SSL_CTX_load_verify_locations)               \
    X(SSL_CTX_set_default_verify_paths) X(SSL_new) X(SSL_free) X(SSL_set_bio) X(SSL_ctrl)           \
    X(SSL_set1_host) X(SSL_get0_param) X(SSL_connect) X(SSL_get_error) X(SSL_get_verify_result)     \
    X(SSL_get_verify_mode) X(SSL_write_ex) X(SSL_read_ex) X(SSL_shutdown)                           \
    X(X509_VERIFY_PARAM_set1_ip_asc) X(X509_verify_cert_error_string) X(ERR_clear_error)           \
    X(ERR_peek_last_error) X(ERR_reason_error_string) X(ERR_error_string_n) X(BIO_s_socket)        \
    X(BIO_meth_new) X(BIO_meth_set_write) X(BIO_meth_set_read) X(BIO_meth_set_puts)                \
    X(BIO_meth_set_ctrl) X(BIO_meth_set_create) X(BIO_meth_set_destroy) X(BIO_meth_get_read)       \
    X(BIO_meth_get_puts) X(BIO_meth_get_ctrl) X(BIO_meth_get_create) X(BIO_meth_get_destroy)       \
    X(BIO_new) X(BIO_free) X(BIO_ctrl) X(BIO_int_ctrl) X(BIO_set_flags) X(BIO_clear_flags)          \
    X(BIO_sock_should_retry)

#define DECLARE(name) static __typeof__(name) *f_##name;
OPENSSL_FUNCTIONS(DECLARE)
#undef DECLARE

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[256];
/* A socket BIO whose writes use send(MSG_NOSIGNAL): a peer that closed must be an error, not
 * a SIGPIPE that ends the daemon. Everything else is BIO_s_socket's. */
static BIO_METHOD *nosignal_method;

static int nosignal_write(BIO *bio, const char *data, int length)
{
    int fd = -1;
    f_BIO_ctrl(bio, BIO_C_GET_FD, 0, &fd);
    errno = 0;
    ssize_t sent = send(fd, data, (size_t)length, MSG_NOSIGNAL);
    f_BIO_clear_flags(bio, BIO_FLAGS_RWS | BIO_FLAGS_SHOULD_RETRY);
    if (sent <= 0 && f_BIO_sock_should_retry((int)sent))
        f_BIO_set_flags(bio, BIO_FLAGS_WRITE | BIO_FLAGS_SHOULD_RETRY);
    return (int)sent;
}

static void load(void)
{
    void *handle = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(load_error, sizeof(load_error), "cannot load OpenSSL (install libssl3): %s", dlerror());
        return;
    }
#define LOAD(name)                                                                                 \
    if (!(f_##name = (__typeof__(name) *)dlsym(handle, #name))) {                                  \
        snprintf(load_error, sizeof(load_error), "libssl.so.3 has no %s", #name);                  \
        return;                                                                                    \
    }
    OPENSSL_FUNCTIONS(LOAD)
#undef LOAD
    const BIO_METHOD *socket_method = f_BIO_s_socket();
    BIO_METHOD *method = f_BIO_meth_new(BIO_TYPE_SOCKET, "vigil socket");
    if (!method) {
        snprintf(load_error, sizeof(load_error), "BIO_meth_new failed");
        return;
    }
    f_BIO_meth_set_write(method, nosignal_write);
    f_BIO_meth_set_read(method, f_BIO_meth_get_read(socket_method));
    f_BIO_meth_set_puts(method, f_BIO_meth_get_puts(socket_method));
    f_BIO_meth_set_ctrl(method, f_BIO_meth_get_ctrl(socket_method));
    f_BIO_meth_set_create(method, f_BIO_meth_get_create(socket_method));
    f_BIO_meth_set_destroy(method, f_BIO_meth_get_destroy(socket_method));
    nosignal_method = method;
}

/* The reason of the last failure: the verify result, the socket's errno, or OpenSSL's queue. */
static void describe(SSL *ssl, int result, char *error, size_t size)
{
    int code = ssl ? f_SSL_get_error(ssl, result) : SSL_ERROR_SSL;
    int saved = errno;
    unsigned long queued = f_ERR_peek_last_error();
    if (ssl && (f_SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER)) {
        long verify = f_SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) {
            if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
                snprintf(error, size, "%s", f_X509_verify_cert_error_string(verify));
            else
                snprintf(error, size, "certificate verify failed: %s", f_X509_verify_cert_error_string(verify));
            f_ERR_clear_error();
            return;
        }
    }
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE)
        snprintf(error, size, "timed out");
    else if (code == SSL_ERROR_SYSCALL && queued == 0)
        snprintf(error, size, "%s", saved ? strerror(saved) : "connection closed by the peer");
    else if (queued != 0) {
        char text[256];
        f_ERR_error_string_n(queued, text, sizeof(text));
        const char *reason = f_ERR_reason_error_string(queued);
        snprintf(error, size, "%s", reason ? reason : text);
    } else
        snprintf(error, size, "TLS error %d", code);
    f_ERR_clear_error();
}

cvigiltls_context *cvigiltls_context_new(const char *ca_file, int verify, char *error, size_t error_size)
{
    pthread_once(&load_once, load);
    if (!nosignal_method) {
        snprintf(error, error_size, "%s", load_error);
        return NULL;
    }
    f_ERR_clear_error();
    SSL_CTX *context = f_SSL_CTX_new(f_TLS_client_method());
    if (!context) {
        describe(NULL, 0, error, error_size);
        return NULL;
    }
    f_SSL_CTX_ctrl(context, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, NULL);
    f_SSL_CTX_ctrl(context, SSL_CTRL_MODE, SSL_MODE_AUTO_RETRY, NULL);
    f_SSL_CTX_set_options(context, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (verify) {
        f_SSL_CTX_set_verify(context, SSL_VERIFY_PEER, NULL);
        int loaded = ca_file ? f_SSL_CTX_load_verify_locations(context, ca_file, NULL)
                             : f_SSL_CTX_set_default_verify_paths(context);
        if (loaded != 1) {
            describe(NULL, 0, error, error_size);
            f_SSL_CTX_free(context);
            return NULL;
        }
    } else {
        f_SSL_CTX_set_verify(context, SSL_VERIFY_NONE, NULL);
    }
    return (cvigiltls_context *)context;
}

void cvigiltls_context_free(cvigiltls_context *context)
{
    if (context)
        f_SSL_CTX_free((SSL_CTX *)context);
}

cvigiltls_session *cvigiltls_connect(cvigiltls_context *handle, int fd, const char *host, char *error, size_t error_size)
{
    SSL_CTX *context = (SSL_CTX *)handle;
    f_ERR_clear_error();
    SSL *ssl = f_SSL_new(context);
    BIO *bio = f_BIO_new(nosignal_method);
    if (!ssl || !bio) {
        describe(NULL, 0, error, error_size);
        f_BIO_free(bio);
        f_SSL_free(ssl);
        return NULL;
    }
    f_BIO_int_ctrl(bio, BIO_C_SET_FD, BIO_NOCLOSE, fd);
    f_SSL_set_bio(ssl, bio, bio);
    unsigned char address[16];
    int is_ip = inet_pton(AF_INET, host, address) == 1 || inet_pton(AF_INET6, host, address) == 1;
    int ok = 1;
    if (!is_ip)
        ok = f_SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, (void *)host) == 1;
    if (ok && (f_SSL_CTX_get_verify_mode(context) & SSL_VERIFY_PEER))
        ok = is_ip ? f_X509_VERIFY_PARAM_set1_ip_asc(f_SSL_get0_param(ssl), host) == 1 : f_SSL_set1_host(ssl, host) == 1;
    if (!ok) {
        describe(NULL, 0, error, error_size);
        f_SSL_free(ssl);
        return NULL;
    }
    errno = 0;
    int result = f_SSL_connect(ssl);
    if (result != 1) {
        describe(ssl, result, error, error_size);
        f_SSL_free(ssl);
        return NULL;
    }
    return (cvigiltls_session *)ssl;
}

int cvigiltls_write(cvigiltls_session *session, const void *data, size_t length, char *error, size_t error_size)
{
    SSL *ssl = (SSL *)session;
    const char *bytes = data;
    while (length > 0) {
        f_ERR_clear_error();
        errno = 0;
        size_t written = 0;
        int result = f_SSL_write_ex(ssl, bytes, length, &written);
        if (result != 1) {
            describe(ssl, result, error, error_size);
            return -1;
        }
        bytes += written;
        length -= written;
    }
    return 0;
}

long cvigiltls_read(cvigiltls_session *session, void *data, size_t length, char *error, size_t error_size)
{
    SSL *ssl = (SSL *)session;
    f_ERR_clear_error();
    errno = 0;
    size_t count = 0;
    int result = f_SSL_read_ex(ssl, data, length, &count);
    if (result == 1)
        return (long)count;
    if (f_SSL_get_error(ssl, result) == SSL_ERROR_ZERO_RETURN)
        return 0;
    describe(ssl, result, error, error_size);
    return -1;
}

void cvigiltls_close(cvigiltls_session *session)
{
    SSL *ssl = (SSL *)session;
    if (!ssl)
        return;
    f_ERR_clear_error();
    f_SSL_shutdown(ssl);
    f_ERR_clear_error();
    f_SSL_free(ssl);
}
