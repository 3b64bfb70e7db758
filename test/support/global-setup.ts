/** Prints, after the run, which integration test files were left out for want of a peer, and how to install it. */
import { exclusionMessage, peerExclusions } from "./peers.js";

export default function setup(): () => void {
  const message = exclusionMessage(peerExclusions());
  return () => {
    if (message) process.stderr.write(`\n${message}\n`);
  };
}
