package dev.offmm.core;

import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Only the API is public: user code on the module path cannot touch the frame region, allocate
 * or free a frame, or reach a lock, a table or a counter of an address space. Shown by compiling
 * a user module against core and offheap: code that uses the API compiles, code that reaches for
 * the internals does not.
 */
class ApiBoundaryTest {
    private static final String JAVAC = Path.of(System.getProperty("java.home"), "bin", "javac").toString();

    @Test
    void shouldKeepTheInternalsOutOfPhysicalMemorysOwnMethods() {
        Set<String> names = Arrays.stream(PhysicalMemory.class.getMethods()).map(Method::getName).collect(Collectors.toSet());
        for (String internal : List.of("region", "allocFrame", "allocFrames", "freeFrame", "freeFrames", "memMap",
                "lockSlab", "failPoints", "frames", "frameSegment", "zeroFrames")) {
            assertFalse(names.contains(internal), "PhysicalMemory." + internal + "() is public");
        }
    }

    @Test
    void shouldExportTheInternalPackagesToCoreAlone() {
        Module offheap = PhysicalMemory.class.getModule();
        Module core = AddressSpace.class.getModule();
        assertTrue(offheap.isNamed() && core.isNamed(), "the tests run on the module path");
        for (String pkg : List.of("zone", "frame", "lock", "page", "inject", "host")) {
            String name = "dev.offmm.offheap." + pkg;
            assertFalse(offheap.isExported(name), name + " is exported to everyone");
            assertTrue(offheap.isExported(name, core), name + " is not exported to core");
        }
        assertTrue(offheap.isExported("dev.offmm.offheap"));
        for (String pkg : List.of("mm", "pgtable", "vma", "fault", "unmap", "ops", "reclaim", "support")) {
            assertFalse(core.isExported("dev.offmm.core." + pkg), "dev.offmm.core." + pkg + " is exported");
        }
    }

    @Test
    void shouldRefuseToCompileUserCodeThatReachesForTheRegionOrAFrame(@TempDir Path dir) throws Exception {
        Result api = compile(dir.resolve("api"), """
                PhysicalMemory m = PhysicalMemory.create(2L << 20);
                long free = m.freeFrameCount() + m.cachedFrameCount() + m.usedFrameCount();
                m.close();
                """);
        assertEquals(0, api.exit, "user code on the API compiles:\n" + api.output);
        Result region = compile(dir.resolve("region"), """
                PhysicalMemory m = PhysicalMemory.create(2L << 20);
                m.zone().region().fill((byte) 0);
                """);
        assertTrue(region.exit != 0 && refused(region.output), "the region is reachable:\n" + region.output);
        Result frame = compile(dir.resolve("frame"), """
                PhysicalMemory m = PhysicalMemory.create(2L << 20);
                long pfn = m.zone().allocFrame();
                """);
        assertTrue(frame.exit != 0 && refused(frame.output), "a frame can be allocated:\n" + frame.output);
        Result internals = compile(dir.resolve("internals"), """
                dev.offmm.core.mm.Mm mm = null;
                dev.offmm.offheap.frame.FrameAllocator frames = null;
                """);
        assertTrue(internals.exit != 0 && refused(internals.output), "internals are visible:\n" + internals.output);
    }

    private record Result(int exit, String output) {
    }

    /** Whether javac refused for the module boundary (not for some unrelated error). */
    private static boolean refused(String output) {
        return output.contains("does not export") || output.contains("is not visible");
    }

    /** Compiles a module {@code user} that requires dev.offmm.core, with {@code body} in a method. */
    private static Result compile(Path dir, String body) throws IOException, InterruptedException {
        Path src = dir.resolve("src");
        Files.createDirectories(src.resolve("user"));
        Files.writeString(src.resolve("module-info.java"), "module user { requires dev.offmm.core; }\n");
        Files.writeString(src.resolve("user/Main.java"), """
                package user;

                import dev.offmm.offheap.PhysicalMemory;

                public class Main {
                    public static void main(String[] args) {
                %s    }
                }
                """.formatted(body.indent(8)));
        String modulePath = Path.of("target/classes").toAbsolutePath() + java.io.File.pathSeparator
                + Path.of("../offheap/target/classes").toAbsolutePath();
        Process p = new ProcessBuilder(JAVAC, "-d", dir.resolve("out").toString(), "--module-path", modulePath,
                src.resolve("module-info.java").toString(), src.resolve("user/Main.java").toString())
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        return new Result(p.waitFor(), out);
    }
}
