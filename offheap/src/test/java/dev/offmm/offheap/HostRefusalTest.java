package dev.offmm.offheap;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A capacity the host refuses is offmm's {@link HostMemoryException} with the errno, never an
 * {@code OutOfMemoryError}: a child JVM runs {@link HostRefusalProbe} under {@code ulimit -v}
 * (2 GB of address space) and asks for 4 GiB, which {@code mmap} refuses with ENOMEM; the same
 * child asking for 64 MiB succeeds, so the limit is what refused.
 */
class HostRefusalTest {
    private static String probe(long mib) throws IOException, InterruptedException {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        String cp = Path.of("target/classes").toAbsolutePath() + ":" + Path.of("target/test-classes").toAbsolutePath();
        String cmd = "ulimit -v 2000000; exec '" + java + "' -Xmx32m -XX:ReservedCodeCacheSize=32m"
                + " -XX:CompressedClassSpaceSize=32m -XX:+UseSerialGC -Xshare:auto --enable-native-access=ALL-UNNAMED"
                + " -cp '" + cp + "' " + HostRefusalProbe.class.getName() + " " + mib;
        Process p = new ProcessBuilder("bash", "-c", cmd).redirectErrorStream(true).start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the child JVM did not finish");
        List<String> out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).lines().toList();
        return out.isEmpty() ? "" : out.get(out.size() - 1);
    }

    @Test
    void shouldReportARefusedCapacityWithTheErrno() throws Exception {
        assumeTrue(System.getProperty("os.name", "").startsWith("Linux") && Files.isExecutable(Path.of("/bin/bash")),
                "needs Linux and bash for ulimit");
        String control = probe(64);
        // The control: a JVM that cannot even start under the limit says nothing about offmm.
        assumeTrue(control.startsWith("created"), () -> "the child JVM does not run under ulimit -v here: " + control);
        assertEquals("created " + (64L << 20), control, "under the limit, 64 MiB is reserved");
        assertEquals("refused call=mmap errno=12 capacity=" + (4096L << 20), probe(4096));
    }
}
