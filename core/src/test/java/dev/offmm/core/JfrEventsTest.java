package dev.offmm.core;

import com.tngtech.archunit.core.domain.Dependency;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import dev.offmm.core.event.Jfr;
import dev.offmm.offheap.PhysicalMemory;
import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordedFrame;
import jdk.jfr.consumer.RecordingFile;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * offmm's JFR events, recorded from a short run: a mapping call of each kind (threshold 0), an OOM
 * fault, a THP split and collapse, a fork and the unshares after it, the grace periods they wait
 * for, and the periodic statistics with the right RSS, none of them from a space after its close.
 * And the hot path: faults and Mmu accesses record nothing and their classes name no event class.
 * With {@code -Doffmm.jfr.dump=FILE} the recording is kept in FILE (for {@code jfr print}).
 */
class JfrEventsTest {
    private static final long PAGE = AddressSpace.PAGE_SIZE;
    private static final long HUGE = PhysicalMemory.HUGE_PAGE_SIZE;
    private static final long MB = 1L << 20;
    private static final int RW = Prot.READ | Prot.WRITE;
    private static final String[] EVENTS = {"Oom", "GracePeriodWait", "HugeSplit", "HugeCollapse", "TableUnshare", "Fork",
        "SlowMappingCall", "AddressSpaceStatistics", "PhysicalMemoryStatistics"};
    /** Room for the skew between JFR's clock and {@link Instant#now()}. */
    private static final Duration SKEW = Duration.ofMillis(50);

    private static long id(AddressSpace as) {
        return as.services().mm().id();
    }

    /** What the run did, for the checks of what it recorded. */
    private static final class Run {
        long oomId;
        long oomVa;
        Instant oomClosed;
        long parentId;
        long childId;
        long hotId;
        long a;
        long b;
        long vmas;
        long rssAtFork;
        long parentRss;
        long childRss;
        long freeFrames;
        int memoryHash;
        Instant stable;
        Instant quietEnd;
    }

    @Test
    void shouldRecordEveryOffmmEventWithItsFields() throws Exception {
        String keep = System.getProperty("offmm.jfr.dump");
        Path file = keep != null ? Path.of(keep) : Files.createTempFile("offmm", ".jfr");
        Run run = new Run();
        // Loads offmm's JFR support before the recorder starts, as a space created earlier in the JVM would:
        // its periodic events are then registered when the recorder starts, not minutes into the run.
        try (PhysicalMemory m = PhysicalMemory.create(4 * MB); AddressSpace s = AddressSpace.create(m, VmConfig.defaults())) {
            assertTrue(LiveSpaces.snapshot().contains(s));
        }
        try (Recording r = new Recording()) {
            for (String e : EVENTS) {
                r.enable("dev.offmm." + e).withThreshold(Duration.ZERO).withPeriod(Duration.ofMillis(100));
            }
            assertFalse(Jfr.on(), "no event is built before a recording starts");
            r.start();
            assertTrue(Jfr.on());
            runOutOfMemory(run);
            splitCollapseAndFork(run);
            r.stop();
            assertFalse(Jfr.on(), "nor after it stops");
            r.dump(file);
        }
        List<RecordedEvent> events = RecordingFile.readAllEvents(file);
        if (keep == null) {
            Files.delete(file);
        }
        checkOomAndCalls(events, run);
        checkHugeForkAndUnshare(events, run);
        checkGraceAndStatistics(events, run);
        checkHotSpace(events, run);
    }

    /** An OOM fault in a 4 MiB memory; the space stays open a few periods, then closes. */
    private static void runOutOfMemory(Run run) throws InterruptedException {
        try (PhysicalMemory tiny = PhysicalMemory.create(4 * MB)) {
            try (AddressSpace small = AddressSpace.create(tiny, VmConfig.defaults())) {
                run.oomId = id(small);
                long m = small.mmap(0, 64 * MB, RW, MapFlags.NORESERVE);
                long va = m;
                while (true) {
                    try {
                        small.putLong(va, 1);
                    } catch (FaultException e) {
                        assertEquals(FaultException.Kind.OOM, e.kind());
                        break;
                    }
                    va += PAGE;
                    assertTrue(va < m + 64 * MB, "a 4 MiB memory ran out before 64 MiB");
                }
                run.oomVa = va;
                Thread.sleep(300);
            }
            run.oomClosed = Instant.now();
            tiny.zone().frames().drainCurrentThread();
            tiny.zone().lockSlab().shrink();
        }
    }

    /**
     * A THP split by a partial munmap, a collapse, a space of faults and accesses alone, a fork
     * (sharing b's table, splitting the collapsed page), both spaces unsharing b, half a quiet second.
     */
    private static void splitCollapseAndFork(Run run) throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.create(64 * MB)) {
            VmConfig config = VmConfig.builder().lockMode(LockMode.SPLIT_PTE_PMD).thp(Thp.MADVISE).sharePageTables(true)
                    .build();
            AddressSpace parent = AddressSpace.create(memory, config);
            run.parentId = id(parent);
            long a = parent.mmap(0, 2 * HUGE, RW, MapFlags.NONE);
            run.a = a;
            assertEquals(0, a & (HUGE - 1));
            parent.madvise(a, HUGE, Advice.HUGEPAGE);
            parent.putLong(a, 1);
            assertEquals(1, parent.stats().hugePages());
            parent.munmap(a + 7 * PAGE, PAGE);
            assertEquals(1, parent.stats().thpSplits());
            for (long p = 0; p < HUGE; p += 4 * PAGE) {
                parent.putLong(a + HUGE + p, p);
            }
            parent.madvise(a + HUGE, HUGE, Advice.COLLAPSE);
            assertEquals(1, parent.stats().thpCollapses());
            long b = parent.mmap(0, HUGE, RW, MapFlags.NONE);
            run.b = b;
            for (long p = 0; p < HUGE; p += PAGE) {
                parent.putLong(b + p, p);
            }
            parent.mprotect(b, PAGE, Prot.READ);
            parent.mprotect(b, PAGE, RW);
            try (AddressSpace hot = AddressSpace.create(memory, config); Mmu mmu = hot.attach()) {
                run.hotId = id(hot);
                long h = hot.mmap(0, 4 * MB, RW, MapFlags.NORESERVE);
                for (long p = 0; p < 4 * MB; p += PAGE) {
                    mmu.putLong(h + p, p);
                    assertEquals(p, mmu.getLong(h + p));
                    assertEquals(p, hot.getLong(h + p));
                }
            }
            run.vmas = parent.mappings().size();
            run.rssAtFork = parent.stats().rssPages();
            try (AddressSpace child = parent.fork()) {
                run.childId = id(child);
                assertTrue(child.stats().sharedTables() >= 1, "b's table is shared");
                child.putLong(b, 7);
                parent.putLong(b + PAGE, 8);
                run.parentRss = parent.stats().rssPages();
                run.childRss = child.stats().rssPages();
                run.freeFrames = memory.freeFrameCount();
                run.memoryHash = System.identityHashCode(memory);
                run.stable = Instant.now();
                Thread.sleep(500);
                // Before the closes begin: a sample taken while they run sees half-closed spaces.
                run.quietEnd = Instant.now();
            }
            parent.close();
        }
    }

    private static void checkOomAndCalls(List<RecordedEvent> events, Run run) {
        long parentId = run.parentId;
        long a = run.a;
        long b = run.b;
        RecordedEvent oom = one(events, "Oom", e -> e.getLong("space") == run.oomId);
        assertEquals("fault", oom.getString("operation"));
        assertEquals(run.oomVa, oom.getLong("address"));
        assertTrue(oom.getBoolean("write"));
        assertEquals(4 * MB, oom.getLong("memorySize"));
        assertTrue(oom.getLong("freeFrames") < 16, "at most a few frames left: " + oom.getLong("freeFrames"));
        assertTrue(oom.getStackTrace() != null && oom.getStackTrace().getFrames().stream()
                .anyMatch(f -> f.getMethod().getName().equals("handleMmFault")), "the stack shows the fault");
        // One call of each kind, with its arguments (threshold 0).
        one(events, "SlowMappingCall", e -> call(e, "mmap", parentId, a, 2 * HUGE) && e.getInt("argument") == RW);
        one(events, "SlowMappingCall", e -> call(e, "madvise", parentId, a, HUGE) && e.getInt("argument") == Advice.HUGEPAGE);
        one(events, "SlowMappingCall", e -> call(e, "munmap", parentId, a + 7 * PAGE, PAGE));
        assertEquals(2, all(events, "SlowMappingCall", e -> call(e, "mprotect", parentId, b, PAGE)).size());
        one(events, "SlowMappingCall", e -> call(e, "fork", parentId, 0, 0));
    }

    private static void checkHugeForkAndUnshare(List<RecordedEvent> events, Run run) {
        long parentId = run.parentId;
        long childId = run.childId;
        long a = run.a;
        // The partial munmap split the THP at a; the fork split the collapsed one at a + 2 MiB.
        one(events, "HugeSplit", e -> e.getLong("space") == parentId && e.getLong("address") == a
                && e.getString("cause").equals("zap"));
        one(events, "HugeSplit", e -> e.getLong("space") == parentId && e.getLong("address") == a + HUGE
                && e.getString("cause").equals("fork"));
        one(events, "HugeCollapse", e -> e.getLong("space") == parentId && e.getLong("address") == a + HUGE);
        RecordedEvent fork = one(events, "Fork", e -> e.getLong("parent") == parentId);
        assertEquals(childId, fork.getLong("child"));
        assertTrue(fork.getLong("sharedTables") >= 1, fork.toString());
        assertEquals(run.rssAtFork * PAGE, fork.getLong("resident"), fork.toString());
        assertEquals(run.vmas, fork.getLong("vmas"), fork.toString());
        RecordedEvent unshare = one(events, "TableUnshare", e -> e.getLong("space") == childId && e.getLong("start") == run.b);
        assertEquals(HUGE, unshare.getLong("length"));
        assertEquals(1, unshare.getInt("tables"));
        assertFalse(unshare.getBoolean("drop"));
        assertFalse(all(events, "TableUnshare", e -> e.getLong("space") == parentId && e.getLong("start") == run.b).isEmpty(),
                "the parent kept it");
    }

    private static void checkGraceAndStatistics(List<RecordedEvent> events, Run run) {
        long parentId = run.parentId;
        long childId = run.childId;
        // Grace periods: the fork's shootdown, the collapse, the close.
        assertFalse(all(events, "GracePeriodWait", e -> e.getLong("space") == parentId && e.getString("cause").equals("shootdown")
                && e.getLong("generation") > 0 && e.getBoolean("completed")).isEmpty());
        one(events, "GracePeriodWait", e -> e.getLong("space") == parentId && e.getString("cause").equals("collapse"));
        one(events, "GracePeriodWait", e -> e.getLong("space") == childId && e.getString("cause").equals("close"));
        // The periodic statistics of the quiet half second: each space's RSS then, and its memory.
        Predicate<RecordedEvent> quiet = e -> e.getStartTime().isAfter(run.stable.plus(SKEW))
                && e.getStartTime().isBefore(run.quietEnd.minus(SKEW));
        List<RecordedEvent> ps = all(events, "AddressSpaceStatistics", e -> e.getLong("space") == parentId && quiet.test(e));
        assertTrue(ps.size() >= 2, "every 100 ms: " + ps.size());
        for (RecordedEvent e : ps) {
            assertEquals(run.parentRss, e.getLong("rssPages"));
            assertEquals(run.parentRss * PAGE, e.getLong("resident"));
            assertEquals(1, e.getLong("forks"));
            assertEquals(1, e.getLong("thpCollapses"));
            assertEquals(2, e.getLong("thpSplits"));
        }
        List<RecordedEvent> cs = all(events, "AddressSpaceStatistics", e -> e.getLong("space") == childId && quiet.test(e));
        assertFalse(cs.isEmpty());
        assertTrue(cs.stream().allMatch(e -> e.getLong("rssPages") == run.childRss), cs.toString());
        List<RecordedEvent> ms = all(events, "PhysicalMemoryStatistics",
                e -> e.getInt("memory") == run.memoryHash && quiet.test(e));
        assertFalse(ms.isEmpty());
        for (RecordedEvent e : ms) {
            assertEquals(2, e.getInt("spaces"));
            assertEquals(run.freeFrames, e.getLong("freeFrames"));
        }
        // The OOM space was sampled while open, and never after its close.
        assertFalse(all(events, "AddressSpaceStatistics", e -> e.getLong("space") == run.oomId).isEmpty());
        assertEquals(List.of(), all(events, "AddressSpaceStatistics", e -> e.getLong("space") == run.oomId
                && e.getStartTime().isAfter(run.oomClosed.plus(SKEW))));
        assertTrue(LiveSpaces.snapshot().stream().noneMatch(s -> id(s) == parentId || id(s) == run.oomId));
    }

    /** 1024 faults and 3072 accesses of the hot space recorded nothing: only its mmap and its close did. */
    private static void checkHotSpace(List<RecordedEvent> events, Run run) {
        List<RecordedEvent> hotEvents = all(events, null, e -> !e.getEventType().getName().endsWith("Statistics")
                && e.getEventType().getField("space") != null && e.getLong("space") == run.hotId);
        hotEvents.sort(Comparator.comparing(RecordedEvent::getStartTime));
        List<String> hot = new ArrayList<>();
        for (RecordedEvent e : hotEvents) {
            String what = e.hasField("operation") ? e.getString("operation") : e.getString("cause");
            hot.add(e.getEventType().getName() + " " + what);
        }
        assertEquals(List.of("dev.offmm.SlowMappingCall mmap", "dev.offmm.GracePeriodWait close"), hot);
        // The site of every event (its first frame outside the event package) is off the access fast path.
        Set<String> fast = Set.of("dev.offmm.core.Mmu", "dev.offmm.core.TlbContext", "dev.offmm.core.WalkCache",
                "dev.offmm.core.BulkCopy", "dev.offmm.core.PinnedPage", "dev.offmm.core.huge.HugeFault");
        int sites = 0;
        for (RecordedEvent e : all(events, null, e -> e.getStackTrace() != null)) {
            for (RecordedFrame f : e.getStackTrace().getFrames()) {
                String cls = f.getMethod().getType().getName();
                if (!cls.startsWith("dev.offmm.core.event.")) {
                    assertFalse(fast.contains(cls), "an event from the access path: " + e);
                    sites++;
                    break;
                }
            }
        }
        assertTrue(sites > 20, "events with stack traces: " + sites);
    }

    private static boolean call(RecordedEvent e, String op, long space, long address, long length) {
        return e.getString("operation").equals(op) && e.getLong("space") == space && e.getLong("address") == address
                && e.getLong("length") == length;
    }

    private static List<RecordedEvent> all(List<RecordedEvent> events, String name, Predicate<RecordedEvent> p) {
        List<RecordedEvent> out = new ArrayList<>();
        for (RecordedEvent e : events) {
            String n = e.getEventType().getName();
            if ((name == null ? n.startsWith("dev.offmm.") : n.equals("dev.offmm." + name)) && p.test(e)) {
                out.add(e);
            }
        }
        return out;
    }

    private static RecordedEvent one(List<RecordedEvent> events, String name, Predicate<RecordedEvent> p) {
        List<RecordedEvent> found = all(events, name, p);
        assertEquals(1, found.size(), () -> "dev.offmm." + name + ": " + found + "\namong " + all(events, name, e -> true));
        return found.getFirst();
    }

    /** The registry of live spaces lets go of a closed space, and holds an unclosed one only weakly. */
    @Test
    void shouldNeitherKeepClosedNorDroppedSpaces() throws InterruptedException {
        AddressSpace closed;
        try (PhysicalMemory m = PhysicalMemory.create(4 * MB)) {
            closed = AddressSpace.create(m, VmConfig.defaults());
            AddressSpace forked = closed.fork();
            assertTrue(LiveSpaces.contains(closed) && LiveSpaces.contains(forked));
            forked.close();
            closed.close();
            assertFalse(LiveSpaces.contains(closed) || LiveSpaces.contains(forked));
            AddressSpace open = AddressSpace.create(m, VmConfig.defaults());
            assertTrue(LiveSpaces.contains(open));
            // The memory's close closes it: that too unregisters it.
        }
        java.lang.ref.WeakReference<AddressSpace> dropped = dropUnclosed();
        for (int i = 0; i < 100 && dropped.get() != null; i++) {
            System.gc();
            Thread.sleep(10);
        }
        assertEquals(null, dropped.get(), "a space dropped unclosed, with its memory, is collected");
    }

    private static java.lang.ref.WeakReference<AddressSpace> dropUnclosed() {
        PhysicalMemory m = PhysicalMemory.create(4 * MB);
        AddressSpace s = AddressSpace.create(m, VmConfig.defaults());
        assertTrue(LiveSpaces.contains(s));
        return new java.lang.ref.WeakReference<>(s);
    }

    /**
     * The access and fault fast paths name no event class: Mmu, its TLB, bulk copies, pins and the
     * huge-page fault build no event; the fault handlers only call OomEvent.emit on their OOM branch.
     */
    @Test
    void shouldKeepEventsOffTheAccessAndFaultPaths() {
        JavaClasses main = new ClassFileImporter().importPaths(Path.of("target/classes"));
        Set<String> none = Set.of("dev.offmm.core.Mmu", "dev.offmm.core.TlbContext", "dev.offmm.core.WalkCache",
                "dev.offmm.core.BulkCopy", "dev.offmm.core.PinnedPage", "dev.offmm.core.PinGuard", "dev.offmm.core.FrameBytes",
                "dev.offmm.core.huge.HugeFault", "dev.offmm.core.pgtable.PgtableAlloc", "dev.offmm.core.reclaim.FrameSource",
                "dev.offmm.core.reclaim.EpochSlot");
        Set<String> oomOnly = Set.of("dev.offmm.core.fault.FaultHandler", "dev.offmm.core.fault.FaultEntry");
        Set<String> bad = new TreeSet<>();
        int oomCalls = 0;
        for (JavaClass c : main) {
            String top = c.getName().replaceAll("\\$.*", "");
            for (Dependency d : c.getDirectDependenciesFromSelf()) {
                if (!d.getTargetClass().getPackageName().equals("dev.offmm.core.event")) {
                    continue;
                }
                if (none.contains(top)) {
                    bad.add(d.getDescription());
                } else if (oomOnly.contains(top)) {
                    boolean emit = d.getTargetClass().getSimpleName().equals("OomEvent")
                            && d.getDescription().contains("OomEvent.emit(");
                    if (!emit) {
                        bad.add(d.getDescription());
                    } else {
                        oomCalls++;
                    }
                }
            }
        }
        assertTrue(bad.isEmpty(), "events on the hot path:\n" + String.join("\n", bad));
        assertEquals(2, oomCalls, "FaultHandler's and FaultEntry's OOM branches");
    }
}
