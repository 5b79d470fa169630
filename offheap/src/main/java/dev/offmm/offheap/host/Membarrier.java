package dev.offmm.offheap.host;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The host's {@code membarrier(2)} with {@code MEMBARRIER_CMD_PRIVATE_EXPEDITED}: every CPU that
 * runs a thread of this process executes a full memory barrier before the call returns. It turns
 * the compiler-only ordering of a reader into a full fence at the moment an updater needs one
 * (userspace RCU's {@code urcu-memb} flavour), so readers pay no fence instruction.
 *
 * <p>Probed once: the process registers its intent ({@code REGISTER_PRIVATE_EXPEDITED}) when this
 * class initialises. Where the host has no such call (another OS or architecture, an old kernel,
 * a seccomp filter), {@link #AVAILABLE} is false and callers must fence on the read side instead.
 * The system property {@code offmm.membarrier=false} turns it off, to measure the other design.
 */
public final class Membarrier {
    private static final int CMD_QUERY = 0;
    private static final int CMD_PRIVATE_EXPEDITED = 1 << 3;
    private static final int CMD_REGISTER_PRIVATE_EXPEDITED = 1 << 4;

    private static final MethodHandle SYSCALL;
    private static final long NR_MEMBARRIER;

    /** Whether {@link #fence()} issues a process-wide barrier; if not, readers must fence themselves. */
    public static final boolean AVAILABLE;

    static {
        long nr = switch (System.getProperty("os.arch", "")) {
            case "amd64", "x86_64" -> 324;
            case "aarch64" -> 283;
            case "riscv64" -> 283;
            default -> -1;
        };
        MethodHandle h = nr >= 0 && System.getProperty("os.name", "").startsWith("Linux") ? syscallHandle() : null;
        SYSCALL = h;
        NR_MEMBARRIER = nr;
        boolean ok = false;
        if (h != null && Boolean.parseBoolean(System.getProperty("offmm.membarrier", "true"))) {
            long cmds = call(CMD_QUERY);
            ok = cmds >= 0 && (cmds & CMD_PRIVATE_EXPEDITED) != 0 && (cmds & CMD_REGISTER_PRIVATE_EXPEDITED) != 0
                    && call(CMD_REGISTER_PRIVATE_EXPEDITED) == 0 && call(CMD_PRIVATE_EXPEDITED) == 0;
        }
        AVAILABLE = ok;
    }

    private Membarrier() {
    }

    /**
     * {@code long syscall(long number, ...)} from the C library, or null. glibc reads every
     * argument as a long, so all four are passed as longs. A restricted method: the JVM warns once
     * unless native access is enabled for this module ({@code --enable-native-access}).
     */
    @SuppressWarnings("restricted")
    private static MethodHandle syscallHandle() {
        try {
            Linker linker = Linker.nativeLinker();
            MemorySegment sym = linker.defaultLookup().find("syscall").orElse(MemorySegment.NULL);
            if (sym.equals(MemorySegment.NULL)) {
                return null;
            }
            return linker.downcallHandle(sym, FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG,
                    ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG), Linker.Option.firstVariadicArg(1));
        } catch (RuntimeException | LinkageError e) {
            return null;
        }
    }

    /** {@code syscall(SYS_membarrier, cmd, 0, 0)}: the result, or -1 on any failure. */
    private static long call(int cmd) {
        try {
            return (long) SYSCALL.invokeExact(NR_MEMBARRIER, (long) cmd, 0L, 0L);
        } catch (Throwable e) {
            return -1;
        }
    }

    /**
     * A full memory barrier on every CPU running a thread of this process, this one included.
     * Costs an inter-processor interrupt per such CPU (microseconds).
     *
     * @throws IllegalStateException if the host has no usable membarrier ({@link #AVAILABLE} false)
     *         or the call fails
     */
    public static void fence() {
        if (!AVAILABLE) {
            throw new IllegalStateException("membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) is not available on this host");
        }
        if (call(CMD_PRIVATE_EXPEDITED) != 0) {
            throw new IllegalStateException("membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed");
        }
    }
}
