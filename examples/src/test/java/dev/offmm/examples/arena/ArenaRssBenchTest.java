package dev.offmm.examples.arena;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The RSS harness runs small and prints a row per step of each arena. */
class ArenaRssBenchTest {
    @Test
    void shouldPrintEveryArenaAndLeaveNoOffmmPageAfterReset() throws InterruptedException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        long left = ArenaRssBench.run(out, 8L << 20, 64L << 10, 2, 0);
        String text = bytes.toString(StandardCharsets.UTF_8);
        assertEquals(0, left, text);
        for (String arena : new String[] {"offmm reserve-commit", "confined + slicing", "confined slicing reused",
                                          "shared per block"}) {
            assertTrue(text.contains(arena), arena + " missing from\n" + text);
        }
        // offmm's rssPages column after a reset: exactly zero.
        assertTrue(text.lines().filter(l -> l.startsWith("offmm") && l.contains(" reset "))
                .allMatch(l -> l.split("\\s+")[l.split("\\s+").length - 2].equals("0.00")), text);
        assertTrue(ArenaRssBench.vmRssBytes() > 0, "VmRSS readable on Linux");
    }

    @Test
    void shouldRejectBadArguments() {
        assertThrows(IllegalArgumentException.class, () -> ArenaRssBench.parse(new String[] {"abc"}));
        assertThrows(IllegalArgumentException.class, () -> ArenaRssBench.parse(new String[] {"8", "6"}));
        assertThrows(IllegalArgumentException.class, () -> ArenaRssBench.run(System.out, 8L << 20, 100, 1, 0));
    }
}
