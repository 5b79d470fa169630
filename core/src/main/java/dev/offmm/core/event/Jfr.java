package dev.offmm.core.event;

import jdk.jfr.Event;
import jdk.jfr.FlightRecorder;
import jdk.jfr.FlightRecorderListener;
import jdk.jfr.Recording;
import jdk.jfr.RecordingState;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;

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

    static {
        FlightRecorder.addListener(new FlightRecorderListener() {
            @Override
            public void recorderInitialized(FlightRecorder recorder) {
                // Set before the hooks are read: a hook added meanwhile sees 'initialized' and registers itself.
                initialized = true;
                for (Hook h : HOOKS) {
                    h.register();
                }
                recompute(recorder);
            }

            @Override
            public void recordingStateChanged(Recording recording) {
                recompute(FlightRecorder.getFlightRecorder());
            }
        });
    }

    private Jfr() {
    }

    /** Whether a recording runs (a volatile load): if not, no offmm event is built. */
    public static boolean on() {
        return on;
    }

    /**
     * Reads the recordings' states under one lock: listeners are called outside the recorder's
     * lock, so the last to write has read the states after every change it was told of.
     */
    private static void recompute(FlightRecorder recorder) {
        synchronized (LOCK) {
            boolean running = false;
            for (Recording r : recorder.getRecordings()) {
                running |= r.getState() == RecordingState.RUNNING;
            }
            on = running;
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
                FlightRecorder.addPeriodicEvent(type, hook);
            }
        }
    }
}
