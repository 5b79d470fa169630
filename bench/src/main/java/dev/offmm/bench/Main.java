package dev.offmm.bench;

import dev.offmm.bench.scale.ScaleHarness;

import java.util.Arrays;

/**
 * Entry point of the bench jar: {@code demo} (a short fault-scaling sweep), {@code scale} (the
 * full harness), {@code reclaim} (the memory-comes-back scenarios), {@code memory} (what
 * physical memory costs the host), {@code jmh} (the JMH suite
 * with JMH's own options).
 */
public final class Main {
    private Main() {
    }

    /** Dispatches on the first argument. */
    public static void main(String[] args) throws Exception {
        String cmd = args.length == 0 ? "help" : args[0];
        String[] rest = Arrays.copyOfRange(args, Math.min(1, args.length), args.length);
        switch (cmd) {
            case "jmh" -> org.openjdk.jmh.Main.main(rest);
            case "scale" -> ScaleHarness.main(rest, false);
            case "demo" -> ScaleHarness.main(rest, true);
            case "stat" -> dev.offmm.bench.stat.StatCommand.main(rest);
            case "reclaim" -> dev.offmm.bench.reclaim.ReclaimHarness.main(rest);
            case "memory" -> dev.offmm.bench.memory.HostMemoryHarness.main(rest);
            case "fork" -> dev.offmm.bench.fork.ForkHarness.main(rest);
            default -> {
                System.err.println("usage: offmm-bench demo|scale|stat|reclaim|memory|fork|jmh [options]"
                        + "   (scale --help for the harness)");
                System.exit(cmd.equals("help") ? 0 : 2);
            }
        }
    }
}
