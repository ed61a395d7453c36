// OpenSSL's libcrypto (Debian: libssl-dev): SHA-256 through the EVP digest API, for content
// fingerprints of datasets and weights (the teacher cache's keys and payload checksums).
#include <openssl/evp.h>
