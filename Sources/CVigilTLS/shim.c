#include "cvigiltls.h"
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* A socket BIO whose writes use send(MSG_NOSIGNAL): a peer that closed must be an error, not
 * a SIGPIPE that ends the daemon. Everything else is BIO_s_socket's. */
static BIO_METHOD *nosignal_method;
static pthread_once_t nosignal_once = PTHREAD_ONCE_INIT;

static int nosignal_write(BIO *bio, const char *data, int length)
{
    int fd = -1;
    BIO_get_fd(bio, &fd);
    errno = 0;
    ssize_t sent = send(fd, data, (size_t)length, MSG_NOSIGNAL);
    BIO_clear_retry_flags(bio);
    if (sent <= 0 && BIO_sock_should_retry((int)sent))
        BIO_set_retry_write(bio);
    return (int)sent;
}

static void nosignal_init(void)
{
    const BIO_METHOD *socket_method = BIO_s_socket();
    BIO_METHOD *method = BIO_meth_new(BIO_TYPE_SOCKET, "vigil socket");
    if (!method)
        return;
    BIO_meth_set_write(method, nosignal_write);
    BIO_meth_set_read(method, BIO_meth_get_read(socket_method));
    BIO_meth_set_puts(method, BIO_meth_get_puts(socket_method));
    BIO_meth_set_ctrl(method, BIO_meth_get_ctrl(socket_method));
    BIO_meth_set_create(method, BIO_meth_get_create(socket_method));
    BIO_meth_set_destroy(method, BIO_meth_get_destroy(socket_method));
    nosignal_method = method;
}

/* The reason of the last failure: the verify result, the socket's errno, or OpenSSL's queue. */
static void describe(SSL *ssl, int result, char *error, size_t size)
{
    int code = ssl ? SSL_get_error(ssl, result) : SSL_ERROR_SSL;
    int saved = errno;
    unsigned long queued = ERR_peek_last_error();
    if (ssl && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER)) {
        long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) {
            if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
                snprintf(error, size, "%s", X509_verify_cert_error_string(verify));
            else
                snprintf(error, size, "certificate verify failed: %s", X509_verify_cert_error_string(verify));
            ERR_clear_error();
            return;
        }
    }
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE)
        snprintf(error, size, "timed out");
    else if (code == SSL_ERROR_SYSCALL && queued == 0)
        snprintf(error, size, "%s", saved ? strerror(saved) : "connection closed by the peer");
    else if (queued != 0) {
        char text[256];
        ERR_error_string_n(queued, text, sizeof(text));
        const char *reason = ERR_reason_error_string(queued);
        snprintf(error, size, "%s", reason ? reason : text);
    } else
        snprintf(error, size, "TLS error %d", code);
    ERR_clear_error();
}

SSL_CTX *cvigiltls_context_new(const char *ca_file, int verify, char *error, size_t error_size)
{
    ERR_clear_error();
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (!context) {
        describe(NULL, 0, error, error_size);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    SSL_CTX_set_options(context, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(context, SSL_MODE_AUTO_RETRY);
    if (verify) {
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, NULL);
        int loaded = ca_file ? SSL_CTX_load_verify_locations(context, ca_file, NULL)
                             : SSL_CTX_set_default_verify_paths(context);
        if (loaded != 1) {
            describe(NULL, 0, error, error_size);
            SSL_CTX_free(context);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(context, SSL_VERIFY_NONE, NULL);
    }
    return context;
}

SSL *cvigiltls_connect(SSL_CTX *context, int fd, const char *host, char *error, size_t error_size)
{
    ERR_clear_error();
    pthread_once(&nosignal_once, nosignal_init);
    SSL *ssl = SSL_new(context);
    BIO *bio = nosignal_method ? BIO_new(nosignal_method) : NULL;
    if (!ssl || !bio) {
        describe(NULL, 0, error, error_size);
        BIO_free(bio);
        SSL_free(ssl);
        return NULL;
    }
    BIO_set_fd(bio, fd, BIO_NOCLOSE);
    SSL_set_bio(ssl, bio, bio);
    unsigned char address[16];
    int is_ip = inet_pton(AF_INET, host, address) == 1 || inet_pton(AF_INET6, host, address) == 1;
    int ok = 1;
    if (!is_ip)
        ok = SSL_set_tlsext_host_name(ssl, host) == 1;
    if (ok && SSL_CTX_get_verify_mode(context) & SSL_VERIFY_PEER)
        ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 : SSL_set1_host(ssl, host) == 1;
    if (!ok) {
        describe(NULL, 0, error, error_size);
        SSL_free(ssl);
        return NULL;
    }
    errno = 0;
    int result = SSL_connect(ssl);
    if (result != 1) {
        describe(ssl, result, error, error_size);
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

int cvigiltls_write(SSL *ssl, const void *data, size_t length, char *error, size_t error_size)
{
    const char *bytes = data;
    while (length > 0) {
        ERR_clear_error();
        errno = 0;
        size_t written = 0;
        int result = SSL_write_ex(ssl, bytes, length, &written);
        if (result != 1) {
            describe(ssl, result, error, error_size);
            return -1;
        }
        bytes += written;
        length -= written;
    }
    return 0;
}

long cvigiltls_read(SSL *ssl, void *data, size_t length, char *error, size_t error_size)
{
    ERR_clear_error();
    errno = 0;
    size_t count = 0;
    int result = SSL_read_ex(ssl, data, length, &count);
    if (result == 1)
        return (long)count;
    if (SSL_get_error(ssl, result) == SSL_ERROR_ZERO_RETURN)
        return 0;
    describe(ssl, result, error, error_size);
    return -1;
}

void cvigiltls_close(SSL *ssl)
{
    if (!ssl)
        return;
    ERR_clear_error();
    SSL_shutdown(ssl);
    ERR_clear_error();
    SSL_free(ssl);
}
