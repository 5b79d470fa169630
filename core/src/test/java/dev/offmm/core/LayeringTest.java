package dev.offmm.core;

import com.tngtech.archunit.core.domain.Dependency;
import com.tngtech.archunit.core.domain.JavaAccess;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import dev.offmm.core.pgtable.PlantedUpwardImport;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The layering of core and offheap, read from the compiled classes (ArchUnit): every import
 * points down the layer order written in {@code dev.offmm.core}'s package-info (and
 * {@code dev.offmm.offheap}'s), no package cycle, raw VarHandle accesses (fences aside) only in the layout classes,
 * no class in core's main code over 400 lines (Javadoc not counted). A planted upward import shows that the check fails.
 */
class LayeringTest {
    /** Core's layers, bottom first: a package may depend on its own layer and those before it. */
    static final List<String> CORE_LAYERS = List.of("event", "reclaim", "vma", "mm", "pgtable", "walk", "huge", "unmap", "fault",
            "ops", "", "support");
    /** Offheap's layers, bottom first. */
    static final List<String> OFFHEAP_LAYERS = List.of("host", "page", "inject", "frame", "lock", "zone", "");
    /**
     * Leaf API types: they import nothing of their module's other packages, and anything may
     * import them (core's value types, offheap's LockClass and argument checks).
     */
    static final Set<String> LEAF_TYPES = Set.of("dev.offmm.core.Prot", "dev.offmm.core.MapFlags", "dev.offmm.core.Advice",
            "dev.offmm.core.LockMode", "dev.offmm.core.VmConfig", "dev.offmm.core.Thp", "dev.offmm.core.VmException",
            "dev.offmm.core.FaultException", "dev.offmm.offheap.LockClass", "dev.offmm.offheap.Checks");
    /** The classes that own a VarHandle over their layout (off-heap records, or their own shared fields). */
    static final Set<String> VARHANDLE_OWNERS = Set.of("dev.offmm.offheap.page.MemMap", "dev.offmm.offheap.lock.LockRecord",
            "dev.offmm.offheap.lock.SpinLock", "dev.offmm.offheap.frame.FrameCache", "dev.offmm.offheap.frame.ZoneLock",
            "dev.offmm.core.pgtable.Entries",
            "dev.offmm.core.FrameBytes", "dev.offmm.core.mm.Mm", "dev.offmm.core.vma.Vma",
            "dev.offmm.core.reclaim.EpochSlot", "dev.offmm.core.support.GraceProbe", "dev.offmm.core.mm.VmCounters");
    private static final int MAX_LINES = 400;

    private static JavaClasses main;

    @BeforeAll
    static void importMainClasses() {
        main = new ClassFileImporter().importPaths(Path.of("target/classes"), Path.of("../offheap/target/classes"));
    }

    @Test
    void shouldImportOnlyDownTheLayersOfCore() {
        List<String> v = layerViolations(main, "dev.offmm.core", CORE_LAYERS);
        assertTrue(v.isEmpty(), "upward imports in core:\n" + String.join("\n", v));
    }

    @Test
    void shouldImportOnlyDownTheLayersOfOffheap() {
        List<String> v = layerViolations(main, "dev.offmm.offheap", OFFHEAP_LAYERS);
        assertTrue(v.isEmpty(), "upward imports in offheap:\n" + String.join("\n", v));
    }

    @Test
    void shouldHaveNoPackageCycle() {
        assertEquals(List.of(), cycles(main, "dev.offmm.core"));
        assertEquals(List.of(), cycles(main, "dev.offmm.offheap"));
    }

    @Test
    void shouldKeepTheLeafApiTypesFreeOfCoreInternals() {
        List<String> bad = new ArrayList<>();
        for (JavaClass c : main) {
            if (isLeaf(c)) {
                for (Dependency d : c.getDirectDependenciesFromSelf()) {
                    JavaClass t = d.getTargetClass().getBaseComponentType();
                    if (t.getPackageName().startsWith("dev.offmm") && !isLeaf(t)) {
                        bad.add(d.getDescription());
                    }
                }
            }
        }
        assertTrue(bad.isEmpty(), String.join("\n", bad));
    }

    @Test
    void shouldCatchAPlantedUpwardImport() {
        JavaClasses planted = new ClassFileImporter().importClasses(PlantedUpwardImport.class);
        List<String> v = layerViolations(planted, "dev.offmm.core", CORE_LAYERS);
        assertFalse(v.isEmpty(), "the planted import of ops from pgtable went unnoticed");
        assertTrue(v.getFirst().contains("PlantedUpwardImport") && v.getFirst().contains("MapOps"), v.getFirst());
        List<String> c = cycles(new ClassFileImporter().importPaths(Path.of("target/classes"),
                Path.of("target/test-classes/dev/offmm/core/pgtable")), "dev.offmm.core");
        assertFalse(c.isEmpty(), "the planted import closes the cycle pgtable -> ops -> pgtable");
    }

    @Test
    void shouldCallVarHandlesOnlyInLayoutClasses() {
        Set<String> bad = new TreeSet<>();
        for (JavaClass c : main) {
            for (JavaAccess<?> a : c.getAccessesFromSelf()) {
                if (a.getTargetOwner().isEquivalentTo(java.lang.invoke.VarHandle.class)
                        && !a.getName().endsWith("Fence")
                        && !VARHANDLE_OWNERS.contains(outermost(c).getName())) {
                    bad.add(a.getDescription());
                }
            }
        }
        assertTrue(bad.isEmpty(), "raw VarHandle calls outside the layout classes:\n" + String.join("\n", bad));
    }

    @Test
    void shouldKeepEveryClassOfCoreUnder400Lines() throws IOException {
        List<String> big = new ArrayList<>();
        try (Stream<Path> files = Files.walk(Path.of("src/main/java"))) {
            files.filter(p -> p.toString().endsWith(".java")).forEach(p -> {
                try {
                    long lines = linesOutsideJavadoc(Files.readAllLines(p));
                    if (lines > MAX_LINES) {
                        big.add(p + ": " + lines + " lines");
                    }
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }
        assertTrue(big.isEmpty(), String.join("\n", big));
    }

    /** Javadoc is the API's documentation, not the class's bulk: the cap counts everything else. */
    static long linesOutsideJavadoc(List<String> lines) {
        long n = 0;
        boolean inDoc = false;
        for (String line : lines) {
            String t = line.strip();
            if (!inDoc && t.startsWith("/**")) {
                inDoc = !t.endsWith("*/");
            } else if (inDoc) {
                inDoc = !t.endsWith("*/");
            } else {
                n++;
            }
        }
        return n;
    }

    // ---- the checks

    private static boolean isLeaf(JavaClass c) {
        return LEAF_TYPES.contains(outermost(c).getName());
    }

    private static JavaClass outermost(JavaClass c) {
        JavaClass top = c.getBaseComponentType();
        while (top.getEnclosingClass().isPresent()) {
            top = top.getEnclosingClass().get();
        }
        return top;
    }

    /** The layer of {@code pkg} under {@code root} ({@code ""} is the root itself), or -1 if it is not one. */
    private static int layerOf(String pkg, String root, List<String> layers) {
        if (pkg.equals(root)) {
            return layers.indexOf("");
        }
        if (!pkg.startsWith(root + ".")) {
            return -1;
        }
        return layers.indexOf(pkg.substring(root.length() + 1));
    }

    /**
     * Every dependency of a class under {@code root} on a class of a higher layer (leaf API types
     * aside), and every class in a package that is not a layer.
     */
    static List<String> layerViolations(JavaClasses classes, String root, List<String> layers) {
        List<String> out = new ArrayList<>();
        for (JavaClass c : classes) {
            if (!c.getPackageName().startsWith(root)) {
                continue;
            }
            int from = layerOf(c.getPackageName(), root, layers);
            if (from < 0) {
                out.add(c.getName() + " is in " + c.getPackageName() + ", which is not a layer of " + root);
                continue;
            }
            for (Dependency d : c.getDirectDependenciesFromSelf()) {
                JavaClass t = d.getTargetClass().getBaseComponentType();
                int to = layerOf(t.getPackageName(), root, layers);
                if (to > from && !isLeaf(t)) {
                    out.add(d.getDescription() + "  [" + name(layers, from) + " -> " + name(layers, to) + "]");
                }
            }
        }
        return out;
    }

    private static String name(List<String> layers, int i) {
        return layers.get(i).isEmpty() ? "(root)" : layers.get(i);
    }

    /** The package cycles under {@code root}, leaf API types aside, each as "a -> b -> ... -> a". */
    static List<String> cycles(JavaClasses classes, String root) {
        Map<String, Set<String>> edges = new HashMap<>();
        for (JavaClass c : classes) {
            String from = c.getPackageName();
            if (!from.startsWith(root)) {
                continue;
            }
            for (Dependency d : c.getDirectDependenciesFromSelf()) {
                String to = d.getTargetClass().getBaseComponentType().getPackageName();
                if (to.startsWith(root) && !to.equals(from) && !isLeaf(d.getTargetClass())) {
                    edges.computeIfAbsent(from, k -> new TreeSet<>()).add(to);
                }
            }
        }
        List<String> found = new ArrayList<>();
        for (String start : new TreeSet<>(edges.keySet())) {
            List<String> path = new ArrayList<>();
            path.add(start);
            if (findCycle(start, start, edges, path, new LinkedHashSet<>())) {
                found.add(String.join(" -> ", path));
            }
        }
        return found;
    }

    private static boolean findCycle(String start, String at, Map<String, Set<String>> edges, List<String> path,
                                     Set<String> seen) {
        for (String next : edges.getOrDefault(at, Set.of())) {
            if (next.equals(start)) {
                path.add(next);
                return true;
            }
            if (seen.add(next)) {
                path.add(next);
                if (findCycle(start, next, edges, path, seen)) {
                    return true;
                }
                path.removeLast();
            }
        }
        return false;
    }
}
