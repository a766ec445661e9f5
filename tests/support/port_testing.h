#ifndef RELUSERVE_TESTS_SUPPORT_PORT_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_PORT_TESTING_H_

// A loopback port that refuses connections, for the client tests'
// unreachable servers.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace reluserve::testing {

// A port on 127.0.0.1 held bound but not listening: connections to it are
// refused, and no other test can take it meanwhile (a stopped server's port
// could be reused). port() is 0 when no port could be bound.
//
// Thread safety: a plain value; the caller serialises.
class HeldPort {
 public:
  HeldPort() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd_ >= 0 &&
        bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) ==
            0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      port_ = ntohs(address.sin_port);
    }
  }
  ~HeldPort() { Release(); }

  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;

  int port() const { return port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

  // Lets the port go (a server may now listen on it); port() stays.
  void Release() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  int port_ = 0;
};

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_PORT_TESTING_H_
