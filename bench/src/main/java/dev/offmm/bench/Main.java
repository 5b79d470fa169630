package dev.offmm.bench;

import java.util.Arrays;

/**
 * Entry point of the bench jar: {@code jmh ...} runs the JMH suite with JMH's own options;
 * other commands are added by the harness.
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
            default -> {
                System.err.println("usage: offmm-bench jmh [JMH options]");
                System.exit(cmd.equals("help") ? 0 : 2);
            }
        }
    }
}
