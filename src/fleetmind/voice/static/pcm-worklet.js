// Microphone → 16 kHz signed 16-bit mono PCM, posted to the page in 20 ms chunks (640 bytes).
// Runs in the AudioWorklet scope, where `sampleRate` is the AudioContext's rate (often 48000); the
// decimation averages the input samples that fall into each output sample, which is a crude low-pass.
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / 16000;
    this.acc = 0;
    this.count = 0;
    this.pos = 0;
    this.out = new Int16Array(320);
    this.fill = 0;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    for (let i = 0; i < input.length; i++) {
      this.acc += input[i];
      this.count += 1;
      this.pos += 1;
      if (this.pos >= this.ratio) {
        this.pos -= this.ratio;
        const v = Math.max(-1, Math.min(1, this.acc / this.count));
        this.out[this.fill++] = v < 0 ? v * 0x8000 : v * 0x7fff;
        this.acc = 0;
        this.count = 0;
        if (this.fill === this.out.length) {
          this.port.postMessage(this.out.buffer.slice(0));
          this.fill = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
