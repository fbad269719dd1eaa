"""Publishes to a GRIP proxy with software written elsewhere: the `gripcontrol`
library over HTTP, and libzmq (pyzmq) over PUSH and PUB/XPUB sockets.

Usage:
  publish.py http CONTROL_URI CHANNEL CONTENT
  publish.py http-response CONTROL_URI CHANNEL BODY
  publish.py push ENDPOINT CHANNEL CONTENT (tnetstring|json)
  publish.py push-many ENDPOINT CHANNEL COUNT
  publish.py xpub ENDPOINT CHANNEL CONTENT
"""
import json
import sys
import time


def tnetstring(value):
    if isinstance(value, dict):
        payload = b"".join(tnetstring(k) + tnetstring(v) for k, v in value.items())
        kind = b"}"
    elif isinstance(value, str):
        payload, kind = value.encode(), b","
    elif isinstance(value, bytes):
        payload, kind = value, b","
    else:
        raise TypeError(type(value))
    return str(len(payload)).encode() + b":" + payload + kind


def stream_item(channel, content):
    item = {"formats": {"http-stream": {"content": content}}}
    if channel is not None:
        item["channel"] = channel
    return item


def main(argv):
    mode = argv[1]
    if mode in ("http", "http-response"):
        from gripcontrol import GripPubControl

        control_uri, channel, content = argv[2:5]
        pub = GripPubControl({"control_uri": control_uri})
        if mode == "http":
            pub.publish_http_stream(channel, content)
        else:
            pub.publish_http_response(channel, content)
        print("published", flush=True)
    elif mode == "push":
        import zmq

        endpoint, channel, content, encoding = argv[2:6]
        context = zmq.Context()
        sock = context.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 30000)  # deliver even on a loaded machine
        sock.connect(endpoint)
        item = stream_item(channel, content)
        frame = tnetstring(item) if encoding == "tnetstring" else b"J" + json.dumps(item).encode()
        sock.send(frame)
        sock.close()
        # pyzmq does not terminate contexts at interpreter exit, so without this the
        # process can end before libzmq's I/O thread has written the message.
        context.term()
        print("published", flush=True)
    elif mode == "push-many":
        import zmq

        # COUNT publishers that each connect, send one item ("<n>\n") and close at
        # once: the proxy must not lose a message from a peer that leaves right away.
        endpoint, channel, count = argv[2:5]
        context = zmq.Context()
        for n in range(int(count)):
            sock = context.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 30000)
            sock.connect(endpoint)
            sock.send(tnetstring(stream_item(channel, "%d\n" % n)))
            sock.close()
        context.term()
        print("published", flush=True)
    elif mode == "xpub":
        import zmq

        endpoint, channel, content = argv[2:5]
        context = zmq.Context()
        sock = context.socket(zmq.XPUB)
        sock.setsockopt(zmq.LINGER, 30000)  # deliver even on a loaded machine
        sock.connect(endpoint)
        deadline = time.time() + 10
        while time.time() < deadline:
            if sock.poll(200):
                message = sock.recv()
                if message == b"\x01" + channel.encode():
                    print("subscribed", flush=True)
                    break
        else:
            print("no subscription seen", flush=True)
            sys.exit(1)
        # The channel frame wins over the item's own `channel` key (spec 4.3).
        sock.send_multipart([channel.encode(), tnetstring(stream_item("ignored", content))])
        # Wait for the unsubscription once the proxy's last subscriber leaves.
        deadline = time.time() + 15
        while time.time() < deadline:
            if sock.poll(200):
                message = sock.recv()
                if message == b"\x00" + channel.encode():
                    print("unsubscribed", flush=True)
                    break
        sock.close()
        context.term()
    else:
        print("unknown mode " + mode, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
