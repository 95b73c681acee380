"""TCP proxies' pure parts: what a connection's first bytes say (TLS ClientHello, PROXY
protocol), ``tcp-request`` rules over them, and the tcplog line. No sockets here; the worker's
TCP loop (``geoproxy.runtime.tcp_session``) does the I/O."""
