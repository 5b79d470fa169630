package dev.offmm.bench.kernel;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The host kernel's anonymous memory calls through FFM downcalls to libc: the baseline every
 * offmm figure is compared with. Needs {@code --enable-native-access=ALL-UNNAMED}.
 */
@SuppressWarnings("restricted")
public final class Libc {
    /** PROT_READ | PROT_WRITE. */
    public static final int PROT_RW = 0x1 | 0x2;
    /** PROT_READ. */
    public static final int PROT_READ = 0x1;
    /** MAP_PRIVATE | MAP_ANONYMOUS. */
    public static final int MAP_PRIVATE_ANON = 0x02 | 0x20;
    /** MADV_DONTNEED. */
    public static final int MADV_DONTNEED = 4;
    /** {@code MADV_HUGEPAGE}. */
    public static final int MADV_HUGEPAGE = 14;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final MethodHandle MMAP = LINKER.downcallHandle(LINKER.defaultLookup().findOrThrow("mmap"),
            FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT,
                    ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
    private static final MethodHandle MUNMAP = LINKER.downcallHandle(LINKER.defaultLookup().findOrThrow("munmap"),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
    private static final MethodHandle MADVISE = LINKER.downcallHandle(LINKER.defaultLookup().findOrThrow("madvise"),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));

    private Libc() {
    }

    /** {@code mmap(NULL, length, prot, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)} as a segment of {@code length} bytes. */
    public static MemorySegment mmapAnon(long length, int prot) {
        try {
            MemorySegment p = (MemorySegment) MMAP.invokeExact(MemorySegment.NULL, length, prot, MAP_PRIVATE_ANON, -1, 0L);
            if (p.address() == -1L) {
                throw new IllegalStateException("mmap(" + length + ") failed");
            }
            return p.reinterpret(length);
        } catch (Throwable e) {
            throw rethrow(e);
        }
    }

    /** {@code munmap}. */
    public static void munmap(MemorySegment segment) {
        try {
            int r = (int) MUNMAP.invokeExact(segment, segment.byteSize());
            if (r != 0) {
                throw new IllegalStateException("munmap failed");
            }
        } catch (Throwable e) {
            throw rethrow(e);
        }
    }

    /** {@code madvise}. */
    public static void madvise(MemorySegment segment, int advice) {
        try {
            int r = (int) MADVISE.invokeExact(segment, segment.byteSize(), advice);
            if (r != 0) {
                throw new IllegalStateException("madvise failed");
            }
        } catch (Throwable e) {
            throw rethrow(e);
        }
    }

    private static RuntimeException rethrow(Throwable e) {
        if (e instanceof RuntimeException r) {
            return r;
        }
        if (e instanceof Error err) {
            throw err;
        }
        return new IllegalStateException(e);
    }
}
