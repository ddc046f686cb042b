#!/usr/bin/env python3
"""An h2c server (HTTP/2 over TCP, prior knowledge) on python-hyper's h2, which sends its
SETTINGS as soon as a connection opens, before the client's preface: what a tunnel through a
proxy may carry in the same packet as the proxy's `200`. Every request is answered 200 with
the body `h2c`.

With `--silent-first`, its first connection goes silent after its SETTINGS: it reads and answers
nothing, and never closes (a server or middlebox that hung).

Prints "listening on http://127.0.0.1:PORT" once it accepts connections.
"""
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events


def serve_connection(sock, silent):
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    while silent:
        if not sock.recv(65536):
            return
    while True:
        data = sock.recv(65536)
        if not data:
            return
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                conn.send_headers(event.stream_id, [(":status", "200"), ("content-length", "3")])
                conn.send_data(event.stream_id, b"h2c", end_stream=True)
        sock.sendall(conn.data_to_send())


def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    print(f"listening on http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    silent = "--silent-first" in sys.argv
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(sock, silent), daemon=True).start()
        silent = False


if __name__ == "__main__":
    main()
