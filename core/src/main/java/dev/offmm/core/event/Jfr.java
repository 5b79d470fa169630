package dev.offmm.core.event;

import jdk.jfr.Event;
import jdk.jfr.FlightRecorder;
import jdk.jfr.FlightRecorderListener;
import jdk.jfr.Recording;
import jdk.jfr.RecordingState;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Whether offmm's events may be recorded at all: true only while a recording runs (started by
 * {@code -XX:StartFlightRecording}, {@code jcmd JFR.start}, a {@link Recording} or a
 * {@code RecordingStream}), so that a JVM that is not recording pays one volatile load per emitting
 * site and builds no event object. While it is true, each site builds its event and asks it
 * ({@link Event#isEnabled()}, {@link Event#shouldCommit()}), as JFR's own events do. A listener
 * recomputes it at every change of a recording's state.
 *
 * <p>Periodic events are registered with the recorder only once it is initialized: registering
 * earlier would start JFR's metadata machinery in a JVM that may never record.
 */
public final class Jfr {
    private static final List<Hook> HOOKS = new CopyOnWriteArrayList<>();
    private static volatile boolean on;
    private static volatile boolean initialized;
    private static final Object LOCK = new Object();
    private static final AtomicLong SEQ = new AtomicLong();
    /** The number of the notification whose answer {@link #on} holds; guarded by {@link #LOCK}. */
    private static long written;

    static {
        FlightRecorder.addListener(new FlightRecorderListener() {
            @Override
            public void recorderInitialized(FlightRecorder recorder) {
                // Set before the hooks are read: a hook added meanwhile sees 'initialized' and registers itself.
                // Nothing of the recorder is asked here: JFR may call this holding its own locks.
                initialized = true;
                guarded(Jfr::registerHooks);
            }

            @Override
            public void recordingStateChanged(Recording recording) {
                guarded(Jfr::recompute);
            }
        });
        // A recorder already running called recorderInitialized inside addListener; its recordings
        // are read now, outside addListener's lock.
        if (FlightRecorder.isInitialized()) {
            guarded(Jfr::recompute);
        }
    }

    private Jfr() {
    }

    /** Whether a recording runs (a volatile load): if not, no offmm event is built. */
    public static boolean on() {
        return on;
    }

    /**
     * Reads the recordings' states with no lock of ours held (JFR calls listeners while it holds the
     * recorder's lock on some paths, and reading the recordings takes that lock), then writes the
     * answer unless a later notification's answer is already written: each notification takes a
     * number after its change, so the highest number read the states after every change notified.
     */
    private static void recompute() {
        long seq = SEQ.incrementAndGet();
        boolean running = false;
        for (Recording r : FlightRecorder.getFlightRecorder().getRecordings()) {
            running |= r.getState() == RecordingState.RUNNING;
        }
        synchronized (LOCK) {
            if (seq > written) {
                written = seq;
                on = running;
            }
        }
    }

    private static void registerHooks() {
        for (Hook h : HOOKS) {
            h.register();
        }
    }

    /** Runs a listener's work; what it throws is logged, never passed into JFR or the recording's caller. */
    private static void guarded(Runnable work) {
        try {
            work.run();
        } catch (RuntimeException e) {
            System.getLogger("dev.offmm.jfr").log(System.Logger.Level.WARNING, "offmm's JFR listener failed", e);
        }
    }

    /**
     * Registers {@code hook} as the producer of periodic event {@code type} (see
     * {@link FlightRecorder#addPeriodicEvent}) once the recorder is initialized, or now if it is.
     */
    public static void addPeriodicEvent(Class<? extends Event> type, Runnable hook) {
        Hook h = new Hook(type, hook);
        HOOKS.add(h);
        if (initialized) {
            h.register();
        }
    }

    /** A periodic event, registered once whichever of the listener and {@link #addPeriodicEvent} gets there first. */
    private record Hook(Class<? extends Event> type, Runnable hook, AtomicBoolean done) {
        Hook(Class<? extends Event> type, Runnable hook) {
            this(type, hook, new AtomicBoolean());
        }

        void register() {
            if (done.compareAndSet(false, true)) {
                try {
                    FlightRecorder.addPeriodicEvent(type, hook);
                } catch (RuntimeException e) {
                    done.set(false);    // the next chance (a later initialization or add) tries again
                    throw e;
                }
            }
        }
    }
}
