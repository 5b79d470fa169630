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

/**
 * The jar's entry point: runs jcstress with the given arguments, then reads the result blob it
 * wrote and fails (exit 1) unless every test configuration ran normally and produced samples, and
 * the control test {@link BrokenLockControl} observed its broken outcome. jcstress itself fails
 * the run for a FORBIDDEN outcome or a test error, but counts a configuration that could not run
 * at all (a VM that would not start, a class that would not load) only as a "soft error".
 *
 * <p>Compiled for Java 25 like the tests: a JVM older than that cannot even start this class.
 */
public final class StressMain {
    private static final String CONTROL = BrokenLockControl.class.getName();
    private static final String CONTROL_OUTCOME = "0, 0";

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
        long controlSeen = 0;
        boolean controlRan = false;
        for (TestResult r : results.getTestResults()) {
            if (r.status() != Status.NORMAL || r.getTotalCount() == 0) {
                problems.add(r.getName() + " " + r.getConfig().jvmArgs + ": status " + r.status() + ", "
                        + r.getTotalCount() + " samples " + r.getMessages() + r.getVmErr());
            }
            if (r.getName().equals(CONTROL)) {
                controlRan = true;
                controlSeen += r.getCount(CONTROL_OUTCOME);
            }
        }
        if (controlRan && controlSeen == 0) {
            problems.add(CONTROL + " never observed \"" + CONTROL_OUTCOME + "\" on its broken lock: the run did not exercise"
                    + " the races it is meant to catch, so the other tests' silence proves nothing");
        }
        System.out.println();
        if (!problems.isEmpty()) {
            System.out.println("offmm stress: FAILED (" + blob + ")");
            problems.forEach(p -> System.out.println("  " + p));
            System.exit(1);
        }
        System.out.println("offmm stress: " + results.getTestResults().size() + " test configurations ran normally"
                + (controlRan ? "; the broken-lock control was caught " + controlSeen + " times" : "") + " (" + blob + ")");
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
