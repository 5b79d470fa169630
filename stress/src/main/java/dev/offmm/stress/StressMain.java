package dev.offmm.stress;

import org.openjdk.jcstress.infra.Status;
import org.openjdk.jcstress.infra.collectors.DiskReadCollector;
import org.openjdk.jcstress.infra.collectors.InProcessCollector;
import org.openjdk.jcstress.infra.collectors.TestResult;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The jar's entry point: runs jcstress with the given arguments, then reads the result blob it
 * wrote and fails (exit 1) unless every test configuration ran normally and produced samples, and
 * each control test ({@link BrokenLockControl}, {@link GraceOrderingControl},
 * {@link QuiescentOrderingControl}, {@link ReportingVsAllocControl}, {@link ThpVsSmallFaultControl}) observed the outcome
 * of its broken variant. jcstress itself fails
 * the run for a FORBIDDEN outcome or a test error, but counts a configuration that could not run
 * at all (a VM that would not start, a class that would not load) only as a "soft error".
 *
 * <p>Compiled for Java 25 like the tests: a JVM older than that cannot even start this class.
 */
public final class StressMain {
    /** Each control test and the outcome it must show: a broken variant the harness has to catch. */
    private static final Map<String, String> CONTROLS = Map.of(BrokenLockControl.class.getName(), "0, 0",
            GraceOrderingControl.class.getName(), "0, 0", QuiescentOrderingControl.class.getName(), "0, 0",
            ReportingVsAllocControl.class.getName(), "1, 1, 1", ThpVsSmallFaultControl.class.getName(), "1, 1");

    private StressMain() {
    }

    /**
     * Runs jcstress, then checks its results.
     *
     * @param args jcstress's arguments
     * @throws Exception if jcstress fails, or the results are incomplete
     */
    public static void main(String[] args) throws Exception {
        long started = System.currentTimeMillis();
        org.openjdk.jcstress.Main.main(args);
        boolean listOnly = false;
        String reportDir = "results";
        for (int i = 0; i < args.length; i++) {
            listOnly |= args[i].equals("-l") || args[i].equals("-h") || args[i].equals("-p");
            if (args[i].equals("-r") && i + 1 < args.length) {
                reportDir = args[i + 1];
            }
        }
        if (listOnly) {
            return;
        }
        File written = newestBlob(started);
        InProcessCollector results = new InProcessCollector();
        DiskReadCollector reader = new DiskReadCollector(written.getPath(), results);
        reader.dump();
        reader.close();
        // jcstress writes its blob into the working directory; keep it with the report instead.
        Path blob = Files.move(written.toPath(), Path.of(reportDir).resolve(written.getName()),
                StandardCopyOption.REPLACE_EXISTING);
        List<String> problems = new ArrayList<>();
        Map<String, Long> controlSeen = new TreeMap<>();
        for (TestResult r : results.getTestResults()) {
            if (r.status() != Status.NORMAL || r.getTotalCount() == 0) {
                problems.add(r.getName() + " " + r.getConfig().jvmArgs + ": status " + r.status() + ", "
                        + r.getTotalCount() + " samples " + r.getMessages() + r.getVmErr());
            }
            String outcome = CONTROLS.get(r.getName());
            if (outcome != null) {
                controlSeen.merge(r.getName(), r.getCount(outcome), Long::sum);
            }
        }
        controlSeen.forEach((name, seen) -> {
            if (seen == 0) {
                problems.add(name + " never observed \"" + CONTROLS.get(name) + "\", its broken variant's outcome: the run did"
                        + " not exercise the race it is meant to catch, so the other tests' silence proves nothing");
            }
        });
        System.out.println();
        if (!problems.isEmpty()) {
            System.out.println("offmm stress: FAILED (" + blob + ")");
            problems.forEach(p -> System.out.println("  " + p));
            System.exit(1);
        }
        StringBuilder caught = new StringBuilder();
        controlSeen.forEach((name, seen) -> caught.append("; ").append(name.substring(name.lastIndexOf('.') + 1))
                .append(" caught ").append(seen).append(" times"));
        System.out.println("offmm stress: " + results.getTestResults().size() + " test configurations ran normally"
                + caught + " (" + blob + ")");
    }

    private static File newestBlob(long notBefore) {
        File newest = null;
        File[] files = new File(".").listFiles((d, n) -> n.startsWith("jcstress-results-") && n.endsWith(".bin.gz"));
        for (File f : files == null ? new File[0] : files) {
            if (f.lastModified() >= notBefore - 2000 && (newest == null || f.lastModified() > newest.lastModified())) {
                newest = f;
            }
        }
        if (newest == null) {
            throw new IllegalStateException("jcstress wrote no result blob in " + new File(".").getAbsolutePath());
        }
        return newest;
    }
}
