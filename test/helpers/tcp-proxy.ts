import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy on loopback in front of a real service, so a test can cut every connection (as a
 * network failure would) without stopping the shared server.
 */
export class TcpProxy {
  private readonly sockets = new Set<net.Socket>();
  private accepting = true;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = net.createServer((client) => {
      if (!proxy?.accepting) {
        client.destroy();
        return;
      }
      const upstream = net.connect(target);
      for (const socket of [client, upstream]) {
        proxy.sockets.add(socket);
        socket.on('close', () => proxy?.sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new TcpProxy(server, (server.address() as AddressInfo).port);
    return proxy;
  }

  /** Cuts every open connection; with `refuseMs`, new connections are refused for that long. */
  async cut(refuseMs = 0): Promise<void> {
    this.accepting = refuseMs === 0;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (refuseMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, refuseMs));
      this.accepting = true;
    }
  }

  get connections(): number {
    return this.sockets.size;
  }

  async close(): Promise<void> {
    this.accepting = false;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
