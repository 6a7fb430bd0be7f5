// Preloaded into Windows Node under Wine only (test/helpers/wine.ts; never in shipped code):
// Wine's ws2_32 rejects the TCP keep-alive option libuv sets while a socket connects, so undici
// (fetch, the stm backend) fails with "connect UNKNOWN". Setting keep-alive once connected works;
// real Windows needs none of this (docs/windows.md "Tests under Wine").
'use strict';
const net = require('node:net');
const setKeepAlive = net.Socket.prototype.setKeepAlive;
net.Socket.prototype.setKeepAlive = function (enable, delay) {
  if (this.connecting || !this._handle) {
    this.once('connect', () => {
      try {
        setKeepAlive.call(this, enable, delay);
      } catch {
        // keep-alive is an optimisation: a socket without it still works
      }
    });
    return this;
  }
  try {
    return setKeepAlive.call(this, enable, delay);
  } catch {
    return this;
  }
};
