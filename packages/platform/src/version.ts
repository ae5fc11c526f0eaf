/** The version every part reports (agents register with it). */
export const VERSION = '0.1.0';
