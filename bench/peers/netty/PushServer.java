// A minimal push server with Netty 4.1, as bench/compare.sh measures it against wspush:
// upgrades on any path, keeps every open channel in a ChannelGroup, and on SIGUSR1 writes
// one TextWebSocketFrame, {"time":<epoch ms>,"seq":<n>}, to the group with writeAndFlush
// (the group hands each channel a retained duplicate of the same buffer). Epoll transport
// when Netty's native library loads, NIO otherwise (Debian's libnetty-java ships the epoll
// jar without its .so); the startup line says which. Logs key=value lines to stderr.
//   java -cp CLASSPATH PushServer [--port 8080] [--bind 127.0.0.1]   (or PORT, BIND)
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultithreadEventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollEventLoopGroup;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.ChannelGroupFuture;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.websocketx.TextWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketServerProtocolConfig;
import io.netty.handler.codec.http.websocketx.WebSocketServerProtocolHandler;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.lang.management.ManagementFactory;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

public final class PushServer {
    // Closed channels leave the group by themselves.
    static final ChannelGroup clients = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);
    static final AtomicLong seq = new AtomicLong();

    static String arg(String[] args, String name, String env, String def) {
        for (int i = 0; i + 1 < args.length; i++)
            if (args[i].equals(name))
                return args[i + 1];
        String v = System.getenv(env);
        return v != null && !v.isEmpty() ? v : def;
    }

    static void log(String fmt, Object... a) {
        System.err.println(String.format(Locale.ROOT, fmt, a));
    }

    /** Joins the group once the upgrade is done; until then the channel is plain HTTP. */
    static final class Joiner extends ChannelInboundHandlerAdapter {
        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
            if (evt instanceof WebSocketServerProtocolHandler.HandshakeComplete)
                clients.add(ctx.channel());
            super.userEventTriggered(ctx, evt);
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ReferenceCountUtil.release(msg); // clients send nothing we use
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }
    }

    static void broadcast() {
        long n = seq.incrementAndGet();
        long t0 = System.nanoTime();
        String json = "{\"time\":" + System.currentTimeMillis() + ",\"seq\":" + n + "}";
        int conns = clients.size();
        ChannelGroupFuture f = clients.writeAndFlush(new TextWebSocketFrame(json));
        double loopMs = (System.nanoTime() - t0) / 1e6;
        f.addListener(done -> {
            int failed = 0;
            for (var r : f)
                if (!r.isSuccess())
                    failed++;
            log("event=broadcast seq=%d conns=%d written=%d failed=%d loop_ms=%.3f done_ms=%.3f", n,
                conns, conns - failed, failed, loopMs, (System.nanoTime() - t0) / 1e6);
        });
    }

    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(arg(args, "--port", "PORT", "8080"));
        String bind = arg(args, "--bind", "BIND", "127.0.0.1");
        boolean epoll = Epoll.isAvailable();
        String transport = epoll ? "epoll"
                                 : "nio epoll_unavailable=\"" + Epoll.unavailabilityCause() + "\"";
        EventLoopGroup boss = epoll ? new EpollEventLoopGroup(1) : new NioEventLoopGroup(1);
        // Default size: 2 x the CPUs.
        MultithreadEventLoopGroup workers = epoll ? new EpollEventLoopGroup() : new NioEventLoopGroup();
        Class<? extends ServerChannel> chan =
            epoll ? EpollServerSocketChannel.class : NioServerSocketChannel.class;
        WebSocketServerProtocolConfig ws = WebSocketServerProtocolConfig.newBuilder()
                                               .websocketPath("/")
                                               .checkStartsWith(true) // every path upgrades
                                               .build();
        ServerBootstrap b = new ServerBootstrap()
                                .group(boss, workers)
                                .channel(chan)
                                .option(ChannelOption.SO_BACKLOG, 4096)
                                .childOption(ChannelOption.TCP_NODELAY, true)
                                .childHandler(new ChannelInitializer<Channel>() {
                                    @Override
                                    protected void initChannel(Channel ch) {
                                        ch.pipeline().addLast(new HttpServerCodec(),
                                                              new HttpObjectAggregator(65536),
                                                              new WebSocketServerProtocolHandler(ws),
                                                              new Joiner());
                                    }
                                });
        Channel server = b.bind(bind, port).sync().channel();
        // HotSpot raises the soft nofile limit to the hard one at startup (-XX:+MaxFDLimit).
        long nofile = ManagementFactory.getOperatingSystemMXBean()
                          instanceof com.sun.management.UnixOperatingSystemMXBean u
                          ? u.getMaxFileDescriptorCount()
                          : -1;
        log("event=listening server=netty addr=%s:%d transport=%s workers=%d nofile=%d java=%s",
            bind, port, transport, workers.executorCount(), nofile, System.getProperty("java.version"));
        sun.misc.Signal.handle(new sun.misc.Signal("USR1"), s -> broadcast());
        boss.scheduleAtFixedRate(() -> log("event=conns conns=%d", clients.size()), 5, 5,
                                 TimeUnit.SECONDS);
        server.closeFuture().sync();
    }
}
