"""fit under tf.distribute.MirroredStrategy on two logical CPUs matches one device.

Logical devices must be configured before TensorFlow initialises its devices, so the
comparison runs in a fresh subprocess.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras
    import numpy as np
    import tfp_flows
    from tfp_flows.training import FlowModel

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(512, 2)) * [0.5, 2.0] + [1.0, -1.0]).astype("float32")
    x[128:160] = 1e30  # half of batch 2: only one replica sees it, both must skip the step

    def run(strategy):
        with strategy.scope():
            model = FlowModel(tfp_flows.flows.realnvp(2, num_layers=2, hidden_layers=[16, 16],
                                                      seed=0))
            model.compile(keras.optimizers.Adam(1e-2, global_clipnorm=1.0))
        hist = model.fit(x, batch_size=64, epochs=2, shuffle=False, verbose=0).history
        return dict(weights=[v.numpy().ravel().tolist() for v in model.trainable_weights],
                    loss=hist["loss"], skipped=hist["skipped_steps"],
                    iterations=int(model.optimizer.iterations.numpy()),
                    jit=bool(model.jit_compile), replicas=strategy.num_replicas_in_sync,
                    log_prob=model.log_prob(x[:32]).numpy().tolist())

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = dict(single=run(tf.distribute.get_strategy()), mirrored=run(mirrored))
    json.dump(out, open(sys.argv[1], "w"))
""")


def test_mirrored_strategy_matches_single_device(tmp_path):
    out_path = tmp_path / "out.json"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", SCRIPT, str(out_path)], check=True, env=env,
                   timeout=600)
    out = json.loads(out_path.read_text())
    single, mirrored = out["single"], out["mirrored"]
    assert mirrored["replicas"] == 2 and single["replicas"] == 1
    assert single["skipped"] == mirrored["skipped"] == [1.0, 2.0]
    assert single["iterations"] == mirrored["iterations"] == 14
    w0 = np.concatenate([np.ravel(w) for w in single["weights"]])
    w1 = np.concatenate([np.ravel(w) for w in mirrored["weights"]])
    assert np.abs(w0).max() > 0.05  # training moved the weights away from zero
    np.testing.assert_allclose(w1, w0, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(mirrored["loss"], single["loss"], rtol=1e-4)
    np.testing.assert_allclose(mirrored["log_prob"], single["log_prob"], rtol=1e-4, atol=1e-4)
